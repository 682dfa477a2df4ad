# paw in a container, for labs that prefer it to a venv: Alpine, busybox crond runs paw every
# 5 minutes. Mount the shares' parent at /slides and a private folder with paw.yaml (and the
# ledger, state) at /data:
#   docker build -t paw .
#   docker run -d --name paw -v /srv/slides:/slides -v /srv/paw-data:/data paw
# paw.yaml in /data then uses /slides/inbox, /slides/outbox, /slides/quarantine,
# state_dir: /slides/.paw-state and ledger csv: /data/ledger.csv.
# Optional extras (DICOM, PostgreSQL, drawn labels): add `-r requirements-dicom.txt` etc. to the
# pip line below and COPY those files too.
FROM python:3.12-alpine
WORKDIR /opt/paw
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY paw.py paw.yaml ./
COPY lib ./lib
RUN echo '*/5 * * * * /usr/local/bin/python /opt/paw/paw.py --config /data/paw.yaml -q' > /etc/crontabs/root
VOLUME ["/slides", "/data"]
CMD ["crond", "-f", "-l", "8", "-L", "/dev/stdout"]
