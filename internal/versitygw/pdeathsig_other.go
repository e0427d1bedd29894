//go:build !linux

package versitygw

import "os/exec"

// setPdeathsig does nothing where the kernel offers no parent-death signal.
func setPdeathsig(*exec.Cmd) {}
