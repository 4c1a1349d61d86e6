// Command labctl builds network labs out of Linux network namespaces, veth
// links and bridges, impairs the links, and runs programs inside the hosts.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "labctl:", err)
		os.Exit(exitCode(err))
	}
}

func run() error {
	return newRootCmd().Execute()
}
