#!/usr/bin/env bash
# EC2 user data for a central instance (Debian 12). Installs the runtime
# packages, a dedicated user, the binaries and models from a release
# tarball you publish to the bucket, nginx and the systemd unit. Fill in
# /etc/xplore/central.env afterwards (see deploy/env/central.env.example).
set -euo pipefail
BUCKET=xplore-faceauth-prod          # the reference bucket (releases/ prefix)
RELEASE=releases/faceauth-latest.tar.gz

apt-get update
apt-get install -y nginx certbot awscli libjpeg62-turbo ca-certificates
id faceauth >/dev/null 2>&1 || useradd --system --home /var/lib/xplore --shell /usr/sbin/nologin faceauth
install -d -o faceauth -g faceauth -m 0750 /var/lib/xplore
install -d -m 0755 /opt/xplore /etc/xplore

# The tarball holds bin/central, bin/edged, models/ (verified by `central models verify`) and deploy/.
aws s3 cp "s3://$BUCKET/$RELEASE" /tmp/faceauth.tar.gz
tar -xzf /tmp/faceauth.tar.gz -C /opt/xplore
install -m 0755 /opt/xplore/bin/central /usr/local/bin/central
MODELS_DIR=/opt/xplore/models /usr/local/bin/central models verify

[ -f /etc/xplore/central.env ] || install -m 0600 /opt/xplore/deploy/env/central.env.example /etc/xplore/central.env
install -m 0644 /opt/xplore/deploy/systemd/xplore-central.service /etc/systemd/system/
install -m 0644 /opt/xplore/deploy/nginx/faceauth.conf /etc/nginx/sites-available/faceauth.conf
systemctl daemon-reload
systemctl enable --now xplore-central

# The site names certbot's certificate, so enable it only once that exists:
#   certbot certonly --webroot -w /var/www/html -d faceauth.example.com
#   ln -s /etc/nginx/sites-available/faceauth.conf /etc/nginx/sites-enabled/
#   nginx -t && systemctl reload nginx
if [ -f /etc/letsencrypt/live/faceauth.example.com/fullchain.pem ]; then
  ln -sf /etc/nginx/sites-available/faceauth.conf /etc/nginx/sites-enabled/faceauth.conf
  nginx -t && systemctl reload nginx
else
  echo "nginx site installed but not enabled: get the certificate with certbot first (see README)"
fi
