// Package deploy holds no code: it keeps the production files (systemd
// units, IAM policies, nginx and NATS configuration, EC2 scripts, the
// Grafana dashboard and the Prometheus alert rules) next to
// the tests that check them with the real tools this machine has.
package deploy
