"""The same ``credential-process`` job done with awslabs' ``iam-rolesanywhere-session`` (the peer).

Used by ``bench_cli.py`` as the comparison point: reads the same flags, asks the same emulator,
prints the same JSON. Needs ``pip install iam-rolesanywhere-session`` (the ``test`` extra has it).
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--certificate", required=True)
    parser.add_argument("--private-key", required=True)
    parser.add_argument("--intermediates")
    parser.add_argument("--trust-anchor-arn", required=True)
    parser.add_argument("--profile-arn", required=True)
    parser.add_argument("--role-arn", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--endpoint", required=True, help="host:port")
    parser.add_argument("--ca-bundle", required=True)
    args = parser.parse_args()

    from iam_rolesanywhere_session import IAMRolesAnywhereSession

    with open(args.certificate, "rb") as f:
        certificate = f.read()
    with open(args.private_key, "rb") as f:
        private_key = f.read()
    chain = None
    if args.intermediates:
        with open(args.intermediates, "rb") as f:
            chain = f.read()
    session = IAMRolesAnywhereSession(
        profile_arn=args.profile_arn,
        role_arn=args.role_arn,
        trust_anchor_arn=args.trust_anchor_arn,
        certificate=certificate,
        private_key=private_key,
        certificate_chain=chain,
        region=args.region,
        endpoint=args.endpoint,
        verify=args.ca_bundle,
    )
    frozen = session.get_refreshable_credentials().get_frozen_credentials()
    sys.stdout.write(
        json.dumps(
            {
                "Version": 1,
                "AccessKeyId": frozen.access_key,
                "SecretAccessKey": frozen.secret_key,
                "SessionToken": frozen.token,
            },
            separators=(",", ":"),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
