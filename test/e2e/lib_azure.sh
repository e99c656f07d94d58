# Talking to a blob endpoint (Azurite or vhdup-testserver) from bash, with a
# Shared Key signer of its own (openssl), independent of vhdup's C code, so
# tests can set up containers and read blobs back without trusting vhdup.
# Sourced after lib.sh.

# az_req VERB BASE PATH [QUERY] [BODYFILE] [HEADER...]: signed request to
# BASE/PATH?QUERY (BASE like http://127.0.0.1:PORT/devstoreaccount1, path
# style, account devstoreaccount1 and Azurite's key unless AZ_ACCOUNT and
# AZ_KEY say otherwise). Prints the HTTP status; the body goes to
# ${AZ_OUT:-$T/az.body}, headers to ${AZ_HDRS:-$T/az.hdrs}. AZ_DATE replaces
# the x-ms-date (to test a stale one); the array AZ_CURL_OPTS adds curl
# options. curl's own exit code is returned.
az_req() {
  local verb=$1 base=$2 path=$3 query=${4:-} body=${5:-}
  shift 5 2>/dev/null || shift $#
  local acct=${AZ_ACCOUNT:-$AZURITE_ACCOUNT} key=${AZ_KEY:-$AZURITE_KEY}
  local hdrs=("$@") cl="" md5="" ctype="" inm="" range="" h name value date keyhex
  date=${AZ_DATE:-$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S GMT')}
  hdrs+=("x-ms-date: $date" "x-ms-version: 2021-08-06")
  if [ -n "$body" ]; then
    cl=$(stat -c %s "$body")
    [ "$cl" = 0 ] && cl=""
    hdrs+=("Content-Type: application/octet-stream")
  fi
  local xms=()
  for h in "${hdrs[@]}"; do
    name=${h%%:*}
    value=${h#*: }
    case "${name,,}" in
    content-md5) md5=$value ;;
    content-type) ctype=$value ;;
    if-none-match) inm=$value ;;
    range) range=$value ;;
    x-ms-*) xms+=("${name,,}:$value") ;;
    esac
  done
  {
    printf '%s\n\n\n%s\n%s\n%s\n\n\n\n%s\n\n%s\n' "$verb" "$cl" "$md5" "$ctype" "$inm" "$range"
    printf '%s\n' "${xms[@]}" | LC_ALL=C sort -t: -k1,1
    printf '/%s/%s/%s' "$acct" "$acct" "$path"
    if [ -n "$query" ]; then
      local line
      tr '&' '\n' <<<"$query" | sed 's/=/:/' | awk -F: -v OFS=: '{ $1 = tolower($1) } 1' |
        LC_ALL=C sort -t: -k1,1 | while IFS= read -r line; do printf '\n%s' "$line"; done
    fi
  } >"$T/az.sts"
  keyhex=$(printf '%s' "$key" | base64 -d | od -An -tx1 -v | tr -d ' \n')
  local sig
  sig=$(openssl dgst -sha256 -mac HMAC -macopt "hexkey:$keyhex" -binary "$T/az.sts" | base64)
  local args=(-sS -o "${AZ_OUT:-$T/az.body}" -D "${AZ_HDRS:-$T/az.hdrs}" -w '%{http_code}' -X "$verb"
    -H "Authorization: SharedKey $acct:$sig")
  [ "$verb" = HEAD ] && args+=(-I)
  for h in "${hdrs[@]}"; do args+=(-H "$h"); done
  [ -n "$body" ] && args+=(--data-binary "@$body")
  local url="$base/$path"
  [ -n "$query" ] && url="$url?$query"
  curl "${args[@]}" ${AZ_CURL_OPTS[@]+"${AZ_CURL_OPTS[@]}"} "$url"
}

# az_mkcontainer BASE NAME: creates a container (201, or 409 if it exists).
az_mkcontainer() {
  local st
  st=$(az_req PUT "$1" "$2" "restype=container" "" "Content-Length: 0")
  case "$st" in 201 | 409) ;; *) fail "create container $2: HTTP $st $(cat "$T/az.body")" ;; esac
}

# az_get BASE CONTAINER/BLOB OUT: downloads a whole blob into OUT.
az_get() {
  local st
  st=$(AZ_OUT=$3 az_req GET "$1" "$2")
  [ "$st" = 200 ] || fail "get $2: HTTP $st"
}

# az_status BASE CONTAINER/BLOB: prints the HTTP status of Get Blob Properties.
az_status() {
  az_req HEAD "$1" "$2"
}

# az_header NAME: a header of the last az_req answer.
az_header() { grep -i "^$1: " "${AZ_HDRS:-$T/az.hdrs}" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

# az_put_blob_garbage BASE CONTAINER/BLOB SIZE: a page blob of SIZE bytes
# whose first and last MiB hold random bytes (stale data for --overwrite).
az_put_blob_garbage() {
  local st
  st=$(az_req PUT "$1" "$2" "" "" "x-ms-blob-type: PageBlob" "x-ms-blob-content-length: $3" \
    "Content-Length: 0")
  [ "$st" = 201 ] || fail "create page blob $2: HTTP $st $(cat "$T/az.body")"
  head -c 1048576 /dev/urandom >"$T/garbage"
  for off in 0 $(($3 - 1048576 - 512)); do
    off=$((off / 512 * 512))
    st=$(az_req PUT "$1" "$2" "comp=page" "$T/garbage" "x-ms-page-write: update" \
      "x-ms-range: bytes=$off-$((off + 1048575))")
    [ "$st" = 201 ] || fail "put garbage page: HTTP $st $(cat "$T/az.body")"
  done
}

# az_container_sas CONTAINER [PERMS]: prints a service SAS query for a whole
# container of the Azurite account, valid for an hour, signed here with
# python's hmac (the service-SAS string-to-sign of version 2021-08-06:
# permissions, start, expiry, canonical resource, identifier, IP, protocol,
# version, resource, snapshot time, encryption scope, five rsc* headers).
az_container_sas() {
  python3 - "$1" "${2:-racwd}" "${AZ_ACCOUNT:-$AZURITE_ACCOUNT}" "${AZ_KEY:-$AZURITE_KEY}" <<'PY'
import base64, datetime, hashlib, hmac, sys, urllib.parse
container, perms, account, key = sys.argv[1:5]
now = datetime.datetime.now(datetime.timezone.utc)
st = (now - datetime.timedelta(minutes=5)).strftime('%Y-%m-%dT%H:%M:%SZ')
se = (now + datetime.timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')
sv = '2021-08-06'
resource = '/blob/%s/%s' % (account, container)
fields = [perms, st, se, resource, '', '', 'http,https', sv, 'c', '', '', '', '', '', '', '']
sts = '\n'.join(fields)
sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
q = [('sv', sv), ('st', st), ('se', se), ('sr', 'c'), ('sp', perms), ('spr', 'http,https'), ('sig', sig)]
print(urllib.parse.urlencode(q))
PY
}
