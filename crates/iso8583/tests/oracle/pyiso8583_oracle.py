"""The pyiso8583 side of the differential test: reads JSON lines from stdin and answers one
JSON line each, with pyiso8583's default_ascii spec.

  {"op": "encode", "mti": "0100", "fields": {"2": "...", ...}} -> {"hex": "..."}
  {"op": "decode", "hex": "..."} -> {"mti": "0100", "fields": {"2": "...", ...}}
"""
import json
import sys

import iso8583
from iso8583.specs import default_ascii as spec

for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "encode":
        doc = {"t": req["mti"]}
        doc.update(req["fields"])
        raw, _ = iso8583.encode(doc, spec)
        out = {"hex": bytes(raw).hex()}
    else:
        doc, _ = iso8583.decode(bytearray(bytes.fromhex(req["hex"])), spec)
        out = {
            "mti": doc["t"],
            "fields": {k: v for k, v in doc.items() if k not in ("t", "p", "1", "h")},
        }
    print(json.dumps(out), flush=True)
