"""The obvious minimal Python credential-process: the usual imports, then one request.

Loads the certificate and key with ``cryptography`` (``x509`` and ``serialization``), signs once,
and POSTs over TLS with ``http.client``: no argument checking, no retries, no real CreateSession.
``bench_cli.py`` runs it beside ours. Ours does the whole job and still starts faster, because
its common path imports none of ``http.client``, ``cryptography.x509``,
``cryptography.hazmat.primitives.serialization`` and ``dataclasses`` (tens of milliseconds).
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa


def main() -> int:
    args = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=False))
    with open(args["--certificate"], "rb") as f:
        x509.load_pem_x509_certificate(f.read())
    with open(args["--private-key"], "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    if isinstance(key, rsa.RSAPrivateKey):
        key.sign(b"x" * 200, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        key.sign(b"x" * 200, ec.ECDSA(hashes.SHA256()))
    context = ssl.create_default_context(cafile=args["--ca-bundle"])
    host, _, port = args["--endpoint"].partition(":")
    conn = http.client.HTTPSConnection(host, int(port), context=context)
    conn.request("POST", "/sessions", body=b"{}", headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    sys.stdout.write(json.dumps({"AccessKeyId": None, "status": response.status}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
