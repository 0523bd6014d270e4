"""python-etcd (v2, unmodified) over TLS with a client certificate: its protocol, cert
and ca_cert options against a server at https://$ETCD_HOST:$ETCD_PORT whose client port
asks for certificates the test CA ($PKI/ca.pem) signed."""

import os
import sys

import etcd

HOST = os.environ.get("ETCD_HOST", "127.0.0.1")
PORT = int(os.environ["ETCD_PORT"])
PKI = os.environ["PKI"]


def client(with_pair):
    pair = {"cert": (f"{PKI}/client.pem", f"{PKI}/client-key.pem")} if with_pair else {}
    return etcd.Client(
        host=HOST, port=PORT, protocol="https", ca_cert=f"{PKI}/ca.pem", read_timeout=5, **pair
    )


def main():
    c = client(True)
    c.write("/tls/k", "v")
    assert c.read("/tls/k").value == "v"
    c.write("/tls/dir/a", "1", ttl=30)
    assert [n.key for n in c.read("/tls/dir", recursive=True).leaves] == ["/tls/dir/a"]
    try:
        client(False).read("/tls/k")
    except Exception:  # the handshake fails: no client certificate
        pass
    else:
        sys.exit("a client without a certificate was served")
    print("python-etcd over TLS: write, read, ttl, listing; refused without a certificate")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
