#!/usr/bin/env python3
"""Writes an RS256 signing key's JWKS (public part only) to JWKS_PATH and prints a token signed with
it, for the authentication benchmark: iss ISSUER, aud AUDIENCE, sub "bench", roles ROLES (comma
separated), valid for an hour.  Usage: make_token.py JWKS_PATH ISSUER AUDIENCE ROLES
"""
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

jwks_path, issuer, audience, roles = sys.argv[1:5]
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
jwk.update({"kid": "bench", "alg": "RS256", "use": "sig"})
with open(jwks_path, "w") as f:
    json.dump({"keys": [jwk]}, f)
now = int(time.time())
claims = {"iss": issuer, "aud": audience, "sub": "bench", "iat": now, "nbf": now - 5, "exp": now + 3600,
          "roles": roles.split(",")}
print(jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench"}))
