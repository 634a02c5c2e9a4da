#!/usr/bin/env python3
"""Writes random card-crypto cases computed by the independent `psec` package, one JSON
object a line, for the differential test in psec_differential.rs.

Usage: psec_vectors.py COUNT SEED
"""
import json
import random
import sys

import psec


def luhn_pan(rng, length):
    body = [rng.randrange(10) for _ in range(length - 1)]
    total = 0
    for i, d in enumerate(reversed(body)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return "".join(map(str, body)) + str((10 - total % 10) % 10)


def main():
    count, seed = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    out = sys.stdout
    for _ in range(count):
        key = bytes(rng.randrange(256) for _ in range(16))
        pan = luhn_pan(rng, rng.choice([13, 15, 16, 16, 16, 19]))
        pin_len = rng.randint(4, 12)
        pin = "".join(str(rng.randrange(10)) for _ in range(pin_len))
        pin4 = pin[:4]
        yymm = "%02d%02d" % (rng.randrange(100), rng.randint(1, 12))
        sc = "%03d" % rng.randrange(1000)
        pvki = str(rng.randrange(10))
        table = "".join(str(rng.randrange(10)) for _ in range(16))
        vlen = rng.randint(1, min(16, len(pan)))
        voff = rng.randint(0, len(pan) - vlen)
        pad = rng.choice("0123456789ABCDEF")
        aes_key = bytes(rng.randrange(256) for _ in range(rng.choice([16, 24, 32])))
        case = {
            "key": key.hex().upper(),
            "pan": pan,
            "pin": pin,
            "yymm": yymm,
            "service_code": sc,
            "cvv": psec.cvv.generate_cvv(key, pan, yymm, sc),
            "pvki": pvki,
            "pvv": psec.pin.generate_visa_pvv(key, pvki, pin4, pan),
            "table": table,
            "voff": voff,
            "vlen": vlen,
            "pad": pad,
            "ibm_offset": psec.pin.generate_ibm3624_offset(key, table, pin, pan, voff, vlen, pad),
            "pinblock0": psec.pinblock.encode_pinblock_iso_0(pin, pan).hex().upper(),
            "pinblock3": psec.pinblock.encode_pinblock_iso_3(pin, pan).hex().upper(),
            "aes_key": aes_key.hex().upper(),
            "pinblock4": psec.pinblock.encipher_pinblock_iso_4(aes_key, pin, pan).hex().upper(),
        }
        out.write(json.dumps(case) + "\n")


if __name__ == "__main__":
    main()
