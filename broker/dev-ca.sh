#!/usr/bin/env bash
# Development certificate authority for the MQTT broker's TLS listener. NOT for production: the CA key
# lies unencrypted next to the certificates. Production uses certificates from the site's PKI.
#
#   broker/dev-ca.sh [--out DIR] [--force] [--days N] [--client NAME]... [SAN]...
#
# Writes into DIR (default broker/dev-ca/):
#   ca.key, ca.crt                 the development CA (EC P-256, self-signed)
#   server.key, server.crt         the broker's certificate, SANs: localhost, 127.0.0.1, ::1, mosquitto
#                                  (the compose service name) plus every SAN argument (a DNS name or an
#                                  IP address)
#   clients/NAME.key, NAME.crt     with --client NAME (repeatable): a client certificate, CN=NAME
# Refuses to overwrite an existing CA or certificate unless --force is given. Keys are 0600.
set -euo pipefail

usage() { sed -n '4,13p' "$0" | sed 's/^# \{0,1\}//'; }

out="$(dirname "$0")/dev-ca"
force=0
days=825
clients=()
sans=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) [[ $# -ge 2 ]] || { echo "dev-ca.sh: --out needs a directory" >&2; exit 2; }; out="$2"; shift 2 ;;
        --force) force=1; shift ;;
        --days) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || { echo "dev-ca.sh: --days needs a number" >&2; exit 2; }
                days="$2"; shift 2 ;;
        --client) [[ $# -ge 2 && "$2" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] \
                      || { echo "dev-ca.sh: --client needs a name of letters, digits, '_', '.', '-'" >&2; exit 2; }
                  clients+=("$2"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "dev-ca.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) [[ "$1" =~ ^[A-Za-z0-9*][A-Za-z0-9.:*-]*$ ]] \
               || { echo "dev-ca.sh: SAN '$1' is neither a DNS name nor an IP address" >&2; exit 2; }
           sans+=("$1"); shift ;;
    esac
done
command -v openssl >/dev/null || { echo "dev-ca.sh: openssl not found (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$out"
umask 077
written=()

refuse_existing() {
    local f
    for f in "$@"; do
        if [[ -e "$f" && $force -eq 0 ]]; then
            echo "dev-ca.sh: $f exists; not overwriting it (use --force to replace it)" >&2
            exit 1
        fi
    done
}

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

# --- CA ----------------------------------------------------------------------------------------------
if [[ -e "$out/ca.key" && -e "$out/ca.crt" && $force -eq 0 ]]; then
    echo "using the existing CA $out/ca.crt"
else
    refuse_existing "$out/ca.key" "$out/ca.crt"
    new_key "$out/ca.key"
    openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" -subj "/CN=telemetry development CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$out/ca.crt"
    chmod 644 "$out/ca.crt"
    written+=("$out/ca.key" "$out/ca.crt")
fi

sign() {  # sign NAME.csr with the CA into NAME.crt; $3 = extensions
    local csr="$1" crt="$2" ext="$3" extfile
    extfile="$(mktemp)"
    printf '%s\n' "$ext" >"$extfile"
    openssl x509 -req -in "$csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial -CAserial "$out/ca.srl" \
        -days "$days" -sha256 -extfile "$extfile" -out "$crt" 2>/dev/null
    rm -f "$extfile" "$csr"
    chmod 644 "$crt"
}

# --- server ------------------------------------------------------------------------------------------
server_sans=(localhost 127.0.0.1 ::1 mosquitto "${sans[@]}")
san_list=""
for s in "${server_sans[@]}"; do
    if [[ "$s" =~ ^[0-9.]+$ || "$s" == *:* ]]; then san_list+="IP:$s,"; else san_list+="DNS:$s,"; fi
done
san_list="${san_list%,}"
refuse_existing "$out/server.key" "$out/server.crt"
new_key "$out/server.key"
openssl req -new -key "$out/server.key" -subj "/CN=mosquitto" -out "$out/server.csr"
sign "$out/server.csr" "$out/server.crt" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san_list"
written+=("$out/server.key" "$out/server.crt ($san_list)")

# --- clients -----------------------------------------------------------------------------------------
for name in "${clients[@]}"; do
    mkdir -p "$out/clients"
    refuse_existing "$out/clients/$name.key" "$out/clients/$name.crt"
    new_key "$out/clients/$name.key"
    openssl req -new -key "$out/clients/$name.key" -subj "/CN=$name" -out "$out/clients/$name.csr"
    sign "$out/clients/$name.csr" "$out/clients/$name.crt" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
    written+=("$out/clients/$name.key" "$out/clients/$name.crt (CN=$name)")
done

echo "wrote:"
printf '  %s\n' "${written[@]}"
echo "the CA key is unencrypted: development only. Clients trust $out/ca.crt."
