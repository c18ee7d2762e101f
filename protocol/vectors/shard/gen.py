"""Writes shards.json: shard keys -> slot and shard for N = 1..5 (SPEC 11.1).

Run from this folder: ``python3 gen.py``. It uses Python's own CRC
(``binascii.crc_hqx(data, 0)`` is CRC16-XMODEM), independently of the C
implementation (protocol/src/mh_key.c) that tests/unit/test_shard.c checks
against the file; django/tests/test_sharding.py checks the Python one.
"""

import binascii
import json

SLOTS = 16384
NS = [1, 2, 3, 4, 5]

KEYS = [
    ("CRC16-XMODEM check string (crc 0x31c3)", "123456789"),
    ("Redis Cluster's CLUSTER KEYSLOT foo is 12182", "foo"),
    ("Redis Cluster's CLUSTER KEYSLOT bar is 5061", "bar"),
    ("empty key", ""),
    ("context user", "user"),
    ("context todos", "todos"),
    ("context notifications", "notifications"),
    ("context with non-ASCII", "résumé"),
    ("context with emoji (non-BMP)", "😀"),
    ("channel canonical key", '["chat",{"room":"lobby"}]'),
    ("channel canonical key, another room", '["chat",{"room":"r-41"}]'),
    ("channel canonical key, no params", '["news",{}]'),
    ("channel canonical key, non-ASCII params", '["room",{"a":"1","b":"é","😀":"x"}]'),
    ("connection id", "3f9c0a1b2c4d.17"),
    ("braces are not a hashtag", "{user}.x"),
    ("slot 0 (the first of shard 0)", "3560"),
    ("slot 16383 (the last of the last shard)", "39296"),
]


def slot(text):
    return binascii.crc_hqx(text.encode("utf-8"), 0) % SLOTS


def main():
    cases = []
    for name, key in KEYS:
        s = slot(key)
        cases.append({"name": name, "input": key,
                      "expect": {"slot": s, "shards": [s * n // SLOTS for n in NS]}})
    doc = {
        "kind": "shard",
        "description": "A shard key (UTF-8) -> its slot (CRC16-XMODEM mod 16384) and its shard "
                       "for N = 1, 2, 3, 4, 5 shards (slot * N // 16384), SPEC section 11.1.",
        "cases": cases,
    }
    with open("shards.json", "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
