#!/usr/bin/env bash
# The Kubernetes executor against a real cluster made with kind, for machines with Docker.
# Not part of CI (the development machines have no Docker engine): the test suite drives the
# same executor against tests/support/fake_k8s.py instead.
#
#   scripts/kind-e2e.sh            # creates cluster "oppen-e2e", runs one job, deletes it
#   KEEP=1 scripts/kind-e2e.sh     # leaves the cluster up
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-oppen-e2e}
IMAGE=oppen:e2e
NS=oppen
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is required" >&2; exit 2; }
done

kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
trap '[ -n "${KEEP:-}" ] || kind delete cluster --name "$CLUSTER"' EXIT

docker build --target train -t "$IMAGE" .  # the lean image training pods pull
kind load docker-image "$IMAGE" --name "$CLUSTER"

# The platform objects the executor relies on, rendered by Terraform's provider-free module.
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
for class in urgent:1000 normal:100 background:10; do
  kubectl apply -f - <<YAML
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: oppen-${class%%:*}}
value: ${class##*:}
YAML
done
# The training pods' own account: no Role, no token mounted (as Terraform makes it).
kubectl -n "$NS" apply -f - <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: oppen-training}
automountServiceAccountToken: false
YAML
kubectl label nodes --all oppen.dev/pool=cpu-training --overwrite

# The training pod reaches the database on the host through kind's gateway.
HOME_DIR=$(mktemp -d)
PG_PORT=${PG_PORT:-55432}
export OPPEN_HOME=$HOME_DIR
initdb -D "$HOME_DIR/pg" -U oppen -A trust >/dev/null
pg_ctl -D "$HOME_DIR/pg" -o "-p $PG_PORT -c listen_addresses=*" -l "$HOME_DIR/pg.log" -w start
trap 'pg_ctl -D "$HOME_DIR/pg" stop >/dev/null; [ -n "${KEEP:-}" ] || kind delete cluster --name "$CLUSTER"' EXIT
echo "host all all 0.0.0.0/0 trust" >> "$HOME_DIR/pg/pg_hba.conf"; pg_ctl -D "$HOME_DIR/pg" reload
GATEWAY=$(docker network inspect kind -f '{{(index .IPAM.Config 0).Gateway}}')
kubectl -n "$NS" create secret generic oppen-database \
  --from-literal=database-url="postgresql+psycopg://oppen@${GATEWAY}:${PG_PORT}/postgres" \
  --dry-run=client -o yaml | kubectl apply -f -

export OPPEN_DATABASE_URL="postgresql+psycopg://oppen@127.0.0.1:${PG_PORT}/postgres"
export OPPEN_EXECUTOR=kubernetes OPPEN_K8S_IMAGE=$IMAGE OPPEN_K8S_NAMESPACE=$NS
export OPPEN_DISPATCH_INTERVAL_S=2
oppen queue submit kind-e2e --cpus 0.5 --memory-mb 1024 --set total_timesteps=2048
oppen queue render 1
timeout 900 oppen dispatcher run --exit-when-idle
oppen queue show 1
oppen queue show 1 --json | python3 -c 'import json,sys; s=json.load(sys.stdin)["job"]["state"]; sys.exit(s != "succeeded")'
echo "kind-e2e: job 1 succeeded on a real cluster"
