"""A local S3 server for the tests and benchmarks: moto, on 127.0.0.1 and a free port, in its
own process.

``python tools/s3_server.py MODE`` creates the bucket ``bkt``, prints one JSON
line (``endpoint``, and ``writer`` / ``reader`` key pairs) and serves until its
stdin is closed.

Writes are as atomic as S3's: moto checks a conditional put (``If-None-Match``)
and then stores the object as two steps, so two racing creates of one key could
both be told they created it (seen under load). Every request that writes (PUT,
POST, DELETE) runs under one lock here, so a conditional create has exactly one
winner, as on S3. Modes:

- ``plain``: moto as it is (conditional writes, no access control);
- ``no-conditional``: the ``If-None-Match`` header is dropped before moto
  sees it, as S3-compatible servers without conditional writes behave;
- ``read-only``: access control on; ``writer`` may do everything, ``reader``
  may list and get objects only.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from typing import Any

import boto3
from moto import settings
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


def main(mode: str = "plain") -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    moto_app = DomainDispatcherApplication(create_backend_app)

    writes = threading.Lock()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if mode == "no-conditional":
            environ.pop("HTTP_IF_NONE_MATCH", None)
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return moto_app(environ, start_response)
        with writes:  # checked and applied as one step, the response body included
            return list(moto_app(environ, start_response))

    server = make_server("127.0.0.1", 0, app, True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"

    def client(service: str, key: str = "testing", secret: str = "testing") -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )

    client("s3").create_bucket(Bucket="bkt")
    keys = {"writer": ["testing", "testing"], "reader": ["testing", "testing"]}
    if mode == "read-only":
        iam = client("iam")
        actions = {"writer": ["s3:*"], "reader": ["s3:GetObject", "s3:ListBucket"]}
        for user, allowed in actions.items():
            iam.create_user(UserName=user)
            policy = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": allowed, "Resource": "*"}],
            }
            iam.put_user_policy(UserName=user, PolicyName=user, PolicyDocument=json.dumps(policy))
            made = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = [made["AccessKeyId"], made["SecretAccessKey"]]
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # from now on every request is checked
    print(json.dumps({"endpoint": endpoint, **keys}), flush=True)
    sys.stdin.read()  # serve until the test closes our stdin
    server.shutdown()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "plain")
