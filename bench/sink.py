"""A local message sink for bench/outbox.py: answers 200 and records arrivals, or never answers.

    python bench/sink.py --port 8801 --mode ok     # 200 to every POST; GET /stats lists arrivals
    python bench/sink.py --port 8802 --mode hang   # reads each request, never answers (30 s cap)

Listens on 127.0.0.1 only. `GET /stats` answers {"count", "records": [[time, type, fo_id,
webhook_id], ...]} with times from time.time(), so another process on the machine can compare.
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECORDS = []
LOCK = threading.Lock()
HANG_SECONDS = 30


class OkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        now = time.time()
        fo_id = None
        event_type = None
        try:
            envelope = json.loads(body)
            event_type = envelope.get("type")
            data = envelope.get("data") or {}
            fo_id = data.get("fulfillment_order_id") or (data.get("fulfillment_order") or {}).get("id")
        except ValueError:
            pass
        with LOCK:
            RECORDS.append([now, event_type, fo_id, self.headers.get("webhook-id")])
        # One write for the whole answer: headers and body in two writes meet Nagle and the
        # client's delayed ACK, and every message would wait ~40 ms.
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 15\r\n\r\n" b'{"status":"ok"}')

    def do_GET(self):
        with LOCK:
            payload = json.dumps({"count": len(RECORDS), "records": RECORDS}).encode()
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(payload)).encode() + b"\r\n\r\n" + payload)


class HangHandler(OkHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with LOCK:
            RECORDS.append([time.time(), None, None, self.headers.get("webhook-id")])
        time.sleep(HANG_SECONDS)  # the adapter gives up first; never answered
        self.close_connection = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("ok", "hang"), default="ok")
    options = parser.parse_args()
    handler = OkHandler if options.mode == "ok" else HangHandler
    server = ThreadingHTTPServer(("127.0.0.1", options.port), handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
