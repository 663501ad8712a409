"""The ingestion baseline: a Flask app that reads a JSON body and answers 204, nothing else.

`bench/ingest.py` serves it with the same gunicorn settings as the adapter; its request rate
is the ceiling the adapter's webhook rate is compared with.
"""

from flask import Flask, request

app = Flask(__name__)


@app.post("/webhooks/<service>")
def receive(service):
    request.get_json()
    return "", 204


@app.get("/healthz")
def healthz():
    return "", 204
