package redislimiter

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the server killed when the test process ends, even by
// a panic or a timeout.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
