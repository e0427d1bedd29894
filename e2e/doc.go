// Package e2e holds the end-to-end tests: they build bin/central and
// bin/edged and drive them as separate processes over HTTP and NATS. The
// package has no code outside its tests.
package e2e
