#!/bin/sh
# certbot's deploy hook, run after each certificate it renews (docs/team-server.md, "Renewal"): copy the new
# certificate where the proxy reads it, then have nginx reload it. nginx keeps serving while it reloads.
# certbot sets RENEWED_LINEAGE to the renewed certificate's folder, /etc/letsencrypt/live/<your domain>.
set -eu
deploy="$(cd "$(dirname "$0")" && pwd)"
: "${RENEWED_LINEAGE:?certbot sets RENEWED_LINEAGE; run this as certbot's --deploy-hook}"
cp "$RENEWED_LINEAGE/fullchain.pem" "$RENEWED_LINEAGE/privkey.pem" "$deploy/certs/"
chmod 600 "$deploy/certs/privkey.pem"
# RELOAD_PROXY: the tests put their own nginx's reload here; a team's server reloads the compose proxy.
${RELOAD_PROXY:-docker compose --project-directory "$deploy" exec -T proxy nginx -s reload}
