#!/usr/bin/env python3
"""Writes the seed corpus, fuzz/corpus/<target>/<name>, in the byte format that
fuzz/src/lib.rs's `Input` reads (one byte per choice, `len` + bytes per text).
Run from anywhere: python3 fuzz/seeds.py. The files are committed; rerun after
changing the format."""
import base64
import os
import urllib.parse

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
GT = "urn:ietf:params:oauth:grant-type:device_code"


def b(x):
    return x.encode() if isinstance(x, str) else bytes(x)


def text(s):
    s = b(s)
    assert len(s) < 256
    return bytes([len(s)]) + s


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(b(data))


# form: first byte even = default limits, odd = 4 limit bytes follow.
forms = {
    "device-authorization": "client_id=tv-app&scope=openid+profile",
    "token": f"grant_type={urllib.parse.quote(GT, safe='')}&device_code=GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS&client_id=tv-app",
    "post-secret": "client_id=printer&client_secret=printer-secret",
    "repeated": "client_id=a&client_id=b",
    "empty-value": "client_id=&scope=",
    "bad-utf8": "a=%FF&b=%C3",
    "literal-fffd": "scope=%EF%BF%BD",
    "plus-and-percent": "scope=a+b%20c&client_id=my%2Bclient",
    "bad-scope": "scope=a%22b+c%5Cd",
    "no-equals": "client_id&scope&&&=x",
    "only-secret": "client_secret=s",
}
for name, body in forms.items():
    write("form", name, b"\x00" + b(body))
write("form", "tiny-limits", b"\x01\x20\x02\x04\x02" + b"client_id=tv-app&scope=a+b+c&x=1")
write("form", "tiny-body-limit", b"\x01\x04\x07\x1f\x07" + b"client_id=x")
write("form", "empty", b"\x00")

# authorization_header: [mode][odd: canned body index | even: len+body][header...]
def basic(raw):
    return "Basic " + base64.b64encode(b(raw)).decode()

hdr = {
    "basic-printer": (0, b"\x01\x00", basic("printer:printer-secret")),
    "basic-lowercase-scheme": (0, b"\x01\x00", "bAsIc " + base64.b64encode(b"printer:s").decode()),
    "basic-unpadded": (0, b"\x01\x00", "Basic " + base64.b64encode(b"ab:c").decode().rstrip("=")),
    "basic-encoded-parts": (0, b"\x01\x00", basic("my+client:p%3Ass%2Bw%25rd")),
    "basic-with-body-id": (0, b"\x01\x01", basic("printer:printer-secret")),
    "basic-mismatch": (0, b"\x01\x02", basic("printer:printer-secret")),
    "basic-and-post": (0, b"\x01\x03", basic("printer:printer-secret")),
    "bearer": (0, b"\x01\x00", "Bearer abc"),
    "no-credentials": (0, b"\x01\x00", "Basic"),
    "not-base64": (0, b"\x01\x00", "Basic !!!"),
    "empty-id": (0, b"\x01\x00", basic(":secret")),
    "bad-percent": (0, b"\x01\x00", basic("id:%FF")),
    "no-colon": (0, b"\x01\x00", basic("nocolon")),
}
for name, (mode, body, header) in hdr.items():
    write("authorization_header", name, bytes([mode]) + body + b(header))
write("authorization_header", "raw-creds", b"\x03\x01\x00printer:printer-secret")
write("authorization_header", "scheme-and-raw", b"\x02\x01\x00" + text("BASIC") + b"a+b:c%20d")
write("authorization_header", "own-body", b"\x03\x00" + text("client_id=x%3Ay") + b"x:y:z")

# user_code: raw text.
codes = {
    "display": "WDJB-MJHT",
    "lower": "wdjbmjht",
    "spaced": " wdjb mjht ",
    "punctuated": "W.D.J.B_M/J/H\tT",
    "em-dash": "WDJB\u2014MJHT",
    "full-width": "\uff37\uff24\uff2a\uff22\uff0d\uff2d\uff2a\uff28\uff34",
    "ideographic-space": "WDJB\u3000MJHT",
    "vowel": "WDJB-MJHA",
    "short": "WDJB-MJH",
    "long": "WDJB-MJHTT",
    "numeric": "123-456-789",
    "numeric-full-width": "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19",
    "accent": "WDJBMJH\u00e9",
    "many-dashes": "-" * 70 + "WDJBMJHT",
    "ticket": "000102030405060708090a0b0c0d0e0f." + base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("="),
    "ticket-short-hash": "000102030405060708090a0b0c0d0e0f.AAAA",
}
for name, s in codes.items():
    write("user_code", name, s)

# Endpoint ops. Common request prefix: [content type][authorization...][body mode]...
CT_FORM, CT_NONE, CT_JSON = b"\x00", b"\x06", b"\x07" + text("application/json")
AUTH_NONE, AUTH_PRINTER = b"\x00", b"\x03"
AUTH_WRONG = b"\x04" + text("wrong")
AUTH_RAW = b"\x06" + text("Bearer x")


def structured(*params, suffix=None):
    out = b"\x01" + bytes([len(params) - 1]) + b"".join(params)
    if suffix is None:
        return out + b"\x01"
    return out + b"\x00" + text(suffix)


def raw_body(body):
    return b"\x00" + text(body)


# device_authorization params: choice byte, then a pick byte (or text).
def da_client(i):
    return b"\x01" + bytes([i])


DA_SECRET = b"\x02\x00"


def da_scope(i):
    return b"\x03" + bytes([i])


def da_op(ct, auth, body, advance=0):
    return bytes([advance]) + ct + auth + body


da = {
    "tv-app": [da_op(CT_FORM, AUTH_NONE, structured(da_client(0)))],
    "tv-app-scope": [da_op(CT_FORM, AUTH_NONE, structured(da_client(0), da_scope(1)))],
    "printer-basic": [da_op(CT_FORM, AUTH_PRINTER, structured(da_scope(0)))],
    "printer-post": [da_op(CT_FORM, AUTH_NONE, structured(da_client(1), DA_SECRET, da_scope(2)))],
    "printer-wrong-secret": [da_op(CT_FORM, AUTH_WRONG, structured(da_scope(0)))],
    "web-only": [da_op(CT_FORM, AUTH_NONE, structured(da_client(2)))],
    "bad-scope": [da_op(CT_FORM, AUTH_NONE, structured(da_client(0), da_scope(3)))],
    "scope-text": [da_op(CT_FORM, AUTH_NONE, structured(da_client(0), b"\x03\x04" + text("openid  profile\"")))],
    "json": [da_op(CT_JSON, AUTH_NONE, structured(da_client(0)))],
    "no-content-type": [da_op(CT_NONE, AUTH_NONE, structured(da_client(0)))],
    "raw-body": [da_op(CT_FORM, AUTH_NONE, raw_body("client_id=tv-app&scope=email"))],
    "raw-header": [da_op(CT_FORM, AUTH_RAW, structured(da_client(0)))],
    "repeated-client": [da_op(CT_FORM, AUTH_NONE, structured(da_client(0), da_client(1)))],
    "suffix": [da_op(CT_FORM, AUTH_NONE, structured(da_client(0), suffix="&scope=openid"))],
    "basic-and-post": [da_op(CT_FORM, AUTH_PRINTER, structured(DA_SECRET))],
    "three-in-a-row": [
        da_op(CT_FORM, AUTH_NONE, structured(da_client(0)), 3),
        da_op(CT_FORM, AUTH_PRINTER, structured(da_scope(1)), 7),
        da_op(CT_FORM, AUTH_NONE, structured(da_client(3) + text("unknown"))),
    ],
}
for name, ops in da.items():
    write("device_authorization", name, b"".join(ops))

# token params.
GRANT = b"\x00\x00"
GRANT_OTHER = b"\x00\x01"


def tk_client(i):
    return b"\x01" + bytes([i])


TK_SECRET = b"\x02\x00"


def code(k, mode, extra=b""):
    return b"\x03" + bytes([k, mode]) + extra


def tk_op(ct, auth, body, advance=5, fail=False):
    return bytes([advance, 0 if fail else 1]) + ct + auth + body


PENDING, APPROVED, DENIED = 0, 1, 2
tk = {
    "pending-on-time": [tk_op(CT_FORM, AUTH_NONE, structured(GRANT, tk_client(0), code(PENDING, 0)))],
    "pending-too-early": [tk_op(CT_FORM, AUTH_NONE, structured(GRANT, tk_client(0), code(PENDING, 0)), advance=1)],
    "pending-twice": [
        tk_op(CT_FORM, AUTH_NONE, structured(GRANT, tk_client(0), code(PENDING, 0))),
        tk_op(CT_FORM, AUTH_NONE, structured(GRANT, tk_client(0), code(PENDING, 0)), advance=2),
    ],
    "approved-redeem": [tk_op(CT_FORM, AUTH_PRINTER, structured(GRANT, code(APPROVED, 0)))],
    "approved-redeem-post": [tk_op(CT_FORM, AUTH_NONE, structured(GRANT, tk_client(1), TK_SECRET, code(APPROVED, 0)))],
    "approved-replay": [
        tk_op(CT_FORM, AUTH_PRINTER, structured(GRANT, code(APPROVED, 0))),
        tk_op(CT_FORM, AUTH_PRINTER, structured(GRANT, code(APPROVED, 0))),
    ],
    "approved-issuer-fails": [tk_op(CT_FORM, AUTH_PRINTER, structured(GRANT, code(APPROVED, 0)), fail=True)],
    "approved-other-client": [tk_op(CT_FORM, AUTH_NONE, structured(GRANT, tk_client(0), code(APPROVED, 0)))],
    "approved-wrong-secret": [tk_op(CT_FORM, AUTH_WRONG, structured(GRANT, code(APPROVED, 0)))],
    "denied": [tk_op(CT_FORM, AUTH_NONE, structured(GRANT, tk_client(0), code(DENIED, 0)))],
    "pending-as-printer": [tk_op(CT_FORM, AUTH_PRINTER, structured(GRANT, code(PENDING, 0)))],
    "near-miss": [tk_op(CT_FORM, AUTH_PRINTER, structured(GRANT, code(APPROVED, 1, b"\x05\x07")))],
    "well-formed-unknown": [tk_op(CT_FORM, AUTH_NONE, structured(GRANT, tk_client(0), code(PENDING, 2, bytes(range(32)))))],
    "malformed-code": [tk_op(CT_FORM, AUTH_NONE, structured(GRANT, tk_client(0), code(PENDING, 3, text("abc"))))],
    "other-grant-type": [tk_op(CT_FORM, AUTH_PRINTER, structured(GRANT_OTHER, code(APPROVED, 0)))],
    "no-grant-type": [tk_op(CT_FORM, AUTH_PRINTER, structured(code(APPROVED, 0)))],
    "web-only": [tk_op(CT_FORM, AUTH_NONE, structured(GRANT, tk_client(2), code(PENDING, 0)))],
    "repeated-code": [tk_op(CT_FORM, AUTH_NONE, structured(GRANT, tk_client(0), code(PENDING, 0), code(DENIED, 0)))],
    "json": [tk_op(CT_JSON, AUTH_PRINTER, structured(GRANT, code(APPROVED, 0)))],
    "raw-header": [tk_op(CT_FORM, AUTH_RAW, structured(GRANT, code(APPROVED, 0)))],
    "raw-body": [tk_op(CT_FORM, AUTH_NONE, raw_body(f"grant_type={GT}&client_id=tv-app&device_code=x"))],
    "suffix-client": [tk_op(CT_FORM, AUTH_NONE, structured(GRANT, code(PENDING, 0), suffix="&client_id=tv-app"))],
}
for name, ops in tk.items():
    write("token", name, b"".join(ops))

# verify ops: [advance][typed choice ...][key][action ...]
def typed_pending(style=0):
    return b"\x01" + bytes([style])


def typed_text(s):
    return b"\x00" + text(s)


def vop(typed, key=0, action=b"\x00", advance=1):
    return bytes([advance]) + typed + bytes([key]) + action


def decide(ticket, approve=True, scope=0, scope_text=None):
    out = ticket + (b"\x00" if approve else b"\x01") + bytes([scope])
    if scope == 3:
        out += text(scope_text or "")
    return out


FROM_RESULT = b"\x02"


def real_ticket(k):
    return b"\x05" + bytes([k])


vf = {
    "pending-display": [vop(typed_pending(0))],
    "pending-lower-nodash": [vop(typed_pending(3))],
    "pending-em-dash": [vop(typed_pending(4))],
    "pending-full-width": [vop(typed_pending(8))],
    "one-off": [vop(b"\x02\x03\x05")],
    "approved-code": [vop(b"\x03")],
    "denied-code": [vop(b"\x04")],
    "garbage": [vop(typed_text("hello world"))],
    "suffix": [vop(b"\x05" + text("X"))],
    "approve": [vop(typed_pending(0), action=decide(FROM_RESULT))],
    "approve-openid": [vop(typed_pending(0), action=decide(FROM_RESULT, scope=1))],
    "approve-too-much": [vop(typed_pending(0), action=decide(FROM_RESULT, scope=3, scope_text="email"))],
    "deny": [vop(typed_pending(0), action=decide(FROM_RESULT, approve=False))],
    "approve-approved": [vop(b"\x03", action=decide(real_ticket(APPROVED)))],
    "deny-denied": [vop(b"\x04", action=decide(real_ticket(DENIED), approve=False))],
    "spliced-hash": [vop(b"\x03", action=b"\x04\x00\x00" + bytes(range(32)) + b"\x00\x00")],
    "spliced-id": [vop(b"\x03", action=b"\x04\x00\x01" + bytes(range(16)) + b"\x01\x00")],
    "forged": [vop(b"\x03", action=b"\x03" + text("000102030405060708090a0b0c0d0e0f." + "A" * 43) + b"\x00\x00")],
    "key-text": [vop(typed_pending(0), key=3, action=text("session-7") + b"\x00")],
    "budget-spent": [vop(b"\x02\x00\x01", key=1, advance=0) for _ in range(7)],
    "approve-then-deny": [
        vop(typed_pending(0), action=decide(FROM_RESULT)),
        vop(typed_pending(0), action=decide(real_ticket(PENDING), approve=False)),
    ],
}
for name, ops in vf.items():
    write("verify", name, b"".join(ops))
