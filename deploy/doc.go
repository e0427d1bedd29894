// Package deploy holds no code: it keeps the production files (systemd
// units, IAM policies, nginx and NATS configuration, EC2 scripts) next to
// the tests that check them with the real tools this machine has.
package deploy
