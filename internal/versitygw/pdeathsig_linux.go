package versitygw

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the gateway when the test process
// dies, so a test binary killed by a timeout leaves no gateway behind.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
