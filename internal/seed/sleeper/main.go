// Command sleeper is the only program in the test images: it exits at once,
// sleeps for an hour when its first argument is "sleep" (a running
// container), or waits for a signal when it is "pause" (the test node's pod
// sandbox image).
package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "sleep":
			time.Sleep(time.Hour)
		case "pause":
			stop := make(chan os.Signal, 1)
			signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
			<-stop
		}
	}
	os.Exit(0)
}
