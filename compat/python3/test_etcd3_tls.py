"""etcd3 (PyPI, unmodified) over TLS with a client certificate: its ca_cert, cert_key and
cert_cert options against a server at https://$ETCD_HOST:$ETCD_PORT whose client port
asks for certificates the test CA ($PKI/ca.pem) signed."""

import os
import sys

import etcd3

HOST = os.environ.get("ETCD_HOST", "127.0.0.1")
PORT = int(os.environ["ETCD_PORT"])
PKI = os.environ["PKI"]


def client(with_pair):
    pair = {}
    if with_pair:
        pair = {"cert_key": f"{PKI}/client-key.pem", "cert_cert": f"{PKI}/client.pem"}
    return etcd3.client(host=HOST, port=PORT, ca_cert=f"{PKI}/ca.pem", timeout=5, **pair)


def main():
    c = client(True)
    c.put("tls/k", "v")
    value, _ = c.get("tls/k")
    assert value == b"v", value
    lease = c.lease(30)
    c.put("tls/leased", "x", lease=lease)
    assert lease.refresh()[0].TTL > 0
    lease.revoke()
    assert c.get("tls/leased")[0] is None
    events, cancel = c.watch("tls/w")
    c.put("tls/w", "1")
    event = next(events)
    assert event.value == b"1", event
    cancel()
    try:
        client(False).get("tls/k")
    except Exception:  # the handshake fails: no client certificate
        pass
    else:
        sys.exit("a client without a certificate was served")
    print("etcd3 over TLS: put, get, lease, watch; refused without a certificate")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
