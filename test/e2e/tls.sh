#!/usr/bin/env bash
# TLS is verified, and plain http:// is refused off loopback. A user uploads
# to an https:// endpoint (socat with a self-signed certificate for
# 127.0.0.1, in front of our strict server): by default vhdup refuses it,
# saying the certificate could not be verified, with a non-zero exit and
# nothing sent to the server; with --ca-file cert.pem the same upload
# works and the blob is exactly the disk (byte for byte what `vhdup expand`
# writes). A CA file that is not the server's, or a certificate for another
# name, is still refused. Plain http:// to a host that is not loopback
# (198.18.0.1, the benchmarking range) is refused at once, before any
# connection, for `upload` and for a manifest; --allow-http (allow_http:
# true) lifts the refusal. That host is only ever "contacted" inside a
# network namespace of its own with no interface up (unshare -n), so no
# packet can leave the machine: there the upload gets as far as a
# connection error, and `vhdup run --dry-run` accepts the manifest.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
ACCT=devstoreaccount1

qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/disk.vhd" 8M
qemu-io -f vpc -c "write -P 0x5a 4096 300k" -c "write -P 0xa5 5M 1M" "$T/disk.vhd" >/dev/null
"$VHDUP" expand -q "$T/disk.vhd" "$T/expected.vhd" || fail "expand failed"
printf '%s\n' "$AZURITE_KEY" >"$T/key"

# The certificates: one for 127.0.0.1 (the endpoint's), one for another
# name, one unrelated CA.
mkcert() { # NAME SUBJECT SAN
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "$2" -addext "subjectAltName=$3" \
    -keyout "$T/$1.key" -out "$T/$1.pem" 2>/dev/null || fail "openssl req ($1) failed"
}
mkcert server /CN=127.0.0.1 IP:127.0.0.1
mkcert other /CN=127.0.0.1 IP:127.0.0.1
mkcert wrongname /CN=example.invalid DNS:example.invalid

start_testserver --key "$AZURITE_KEY" --require-md5
az_mkcontainer "$TS_URL" vhds

# tls_front CERTNAME: a TLS endpoint on loopback with that certificate,
# forwarding to the strict server; sets TLS_PORT. socat, or (without it) a
# small Python proxy.
tls_front() {
  TLS_PORT=$(free_port)
  if command -v socat >/dev/null; then
    socat "OPENSSL-LISTEN:$TLS_PORT,bind=127.0.0.1,cert=$T/$1.pem,key=$T/$1.key,verify=0,fork,reuseaddr" \
      "TCP:127.0.0.1:$TS_PORT" 2>>"$T/socat.log" &
  else
    python3 - "$TLS_PORT" "$T/$1.pem" "$T/$1.key" "$TS_PORT" <<'PY' 2>>"$T/socat.log" &
import socket, ssl, sys, threading
port, cert, key, back = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(16)
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def serve(c):
    try:
        t = ctx.wrap_socket(c, server_side=True)
    except (OSError, ssl.SSLError):
        c.close()
        return
    u = socket.create_connection(("127.0.0.1", back))
    threading.Thread(target=pump, args=(u, t), daemon=True).start()
    pump(t, u)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
  fi
  _pids+=($!)
  wait_port "$TLS_PORT" 10
}

# nothing_sent NAME BLOB: the server saw no request and holds no such blob.
nothing_sent() {
  local n
  n=$(ts_stat requests)
  [ "$n" -eq 0 ] || fail "$1: the server got $n requests: $(ts_stats)"
  [ ! -e "$TS_STORE/$ACCT/vhds/$2.data" ] || fail "$1: the blob was created"
}

# ------------------------------------------------ https with a self-signed cert
tls_front server
ts_reset_stats
expect_fail 1 "[Cc]ertificate" -- timeout -k 2 30 "$VHDUP" upload --retries 2 \
  --account-key-file "$T/key" "$T/disk.vhd" "https://127.0.0.1:$TLS_PORT/$ACCT/vhds/tls.vhd"
nothing_sent "self-signed, no --ca-file" tls.vhd
pass "self-signed certificate refused by default: $(grep -m1 -i certificate "$T/err" | head -c 200)"

expect_fail 1 "[Cc]ertificate" -- timeout -k 2 30 "$VHDUP" upload --retries 2 --ca-file "$T/other.pem" \
  --account-key-file "$T/key" "$T/disk.vhd" "https://127.0.0.1:$TLS_PORT/$ACCT/vhds/tls.vhd"
nothing_sent "another CA" tls.vhd
pass "a --ca-file that did not sign the server's certificate: refused"

rc=0
timeout -k 2 30 "$VHDUP" upload --ca-file "$T/server.pem" --account-key-file "$T/key" --progress=json \
  "$T/disk.vhd" "https://127.0.0.1:$TLS_PORT/$ACCT/vhds/tls.vhd" >"$T/ok.json" 2>"$T/ok.err" || rc=$?
[ "$rc" -eq 0 ] || fail "with --ca-file: exit $rc: $(tail -n 3 "$T/ok.err")"
cmp "$T/expected.vhd" "$TS_STORE/$ACCT/vhds/tls.vhd.data" ||
  fail "with --ca-file: the blob differs from what vhdup expand writes"
[ "$(ts_stat put_pages)" -gt 0 ] || fail "with --ca-file: no Put Page reached the server"
pass "with --ca-file cert.pem: accepted, the blob is exactly the expanded disk"

# A certificate for another name, even from the trusted CA file.
tls_front wrongname
ts_reset_stats
expect_fail 1 "[Cc]ertificate|name|subject" -- timeout -k 2 30 "$VHDUP" upload --retries 2 \
  --ca-file "$T/wrongname.pem" --account-key-file "$T/key" "$T/disk.vhd" \
  "https://127.0.0.1:$TLS_PORT/$ACCT/vhds/name.vhd"
nothing_sent "wrong name" name.vhd
pass "a certificate for another name: refused ($(tail -n 1 "$T/err" | head -c 160))"

# ------------------------------------------------ plain http:// off loopback
# Nothing may reach 198.18.0.1: every command naming it runs in a network
# namespace with no interface up, when the machine allows one.
NONET=()
if unshare -n true 2>/dev/null; then
  NONET=(unshare -n)
elif unshare -rn true 2>/dev/null; then
  NONET=(unshare -rn)
fi
FAR=http://198.18.0.1/$ACCT/vhds/far.vhd
t0=$(date +%s%N)
expect_fail 2 "refusing plain http://" -- "${NONET[@]}" "$VHDUP" upload \
  --account-key-file "$T/key" "$T/disk.vhd" "$FAR"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt $((1000 * SLOW)) ] || fail "http:// refusal took $ms ms (it must come before any connection)"
pass "http:// to 198.18.0.1 refused in $ms ms: $(head -n 1 "$T/err" | head -c 160)"

cat >"$T/far.yaml" <<YAML
version: 1
uploads:
  - source: disk.vhd
    destination: "$FAR?sv=2021-08-06&sr=b&sp=cw&sig=notasecret"
YAML
sed 's/^    destination:.*/&\n    allow_http: true/' "$T/far.yaml" >"$T/far_allowed.yaml"
expect_fail 3 "far.yaml:[0-9]+:[0-9]+: error: .*(plain http|http://)" -- "${NONET[@]}" "$VHDUP" run --dry-run "$T/far.yaml"
pass "manifest with an http:// destination off loopback: refused at its line"

if [ ${#NONET[@]} -eq 0 ]; then
  echo "skip: --allow-http (no network namespace here, and 198.18.0.1 must not be contacted)"
else
  rc=0
  "${NONET[@]}" timeout -k 2 20 "$VHDUP" upload --allow-http --stall-timeout 1 --retries 1 \
    --account-key-file "$T/key" "$T/disk.vhd" "$FAR" >"$T/out" 2>"$T/err" || rc=$?
  [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ] || fail "--allow-http: exit $rc: $(cat "$T/err")"
  grep -Eq -- "refus|--allow-http" "$T/err" && fail "--allow-http: still refused: $(cat "$T/err")"
  grep -Eiq "connect|unreachable|network|resolve|timed? ?out" "$T/err" ||
    fail "--allow-http: no connection error: $(cat "$T/err")"
  pass "--allow-http: accepted, then a connection error (no network here): $(tail -n 1 "$T/err" | head -c 160)"
  rc=0
  (cd "$T" && "${NONET[@]}" "$VHDUP" run --dry-run --progress none far_allowed.yaml) \
    >"$T/out" 2>"$T/err" || rc=$?
  [ "$rc" -eq 0 ] || fail "allow_http: true, --dry-run: exit $rc: $(cat "$T/err")"
  pass "manifest with allow_http: true: accepted by --dry-run"
fi
