"""Resolve the team server's documented name, mlflow.example.com, to this machine's loopback.

The tests' subprocesses put this folder on PYTHONPATH, and Python imports sitecustomize at start-up.
TEST_HOSTNAMES="mlflow.example.com=127.0.0.1" plays the part of the team's DNS: the client still connects to
https://mlflow.example.com:<port>, checks the certificate for that name, and sends it as the Host.
"""

import os
import socket


def resolving(addresses: dict, getaddrinfo=socket.getaddrinfo):
    """A getaddrinfo that looks up `addresses` (name: address) first; the tests' own process uses it too."""

    def lookup(host, *args, **kwargs):
        return getaddrinfo(addresses.get(host, host), *args, **kwargs)

    return lookup


_ADDRESSES = dict(pair.split("=", 1) for pair in os.environ.get("TEST_HOSTNAMES", "").split(",") if pair)
if _ADDRESSES:
    socket.getaddrinfo = resolving(_ADDRESSES)
