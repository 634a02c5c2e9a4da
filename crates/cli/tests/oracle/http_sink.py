"""An HTTP endpoint for the SMS and push tests (the standard library's server): it prints its
port, then one JSON line per POST it takes (path, headers, body) and answers 200. The server
answers on a thread per request: a lock keeps each line whole (print writes the text and the
newline separately, so two requests at once could share a line)."""
import http.server, json, sys, threading

LOCK = threading.Lock()


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(n).decode("utf-8")
        line = json.dumps({
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        })
        with LOCK:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
