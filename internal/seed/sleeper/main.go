// Command sleeper is the only program in the test images: it exits at once,
// sleeps for an hour when its first argument is "sleep" (a running
// container; "sleep 45s" sleeps that long), fails at once with "fail" (a
// pod in CrashLoopBackOff), or waits for a signal when it is "pause" (the
// test node's pod sandbox image).
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
			d := time.Hour
			if len(os.Args) > 2 {
				if parsed, err := time.ParseDuration(os.Args[2]); err == nil {
					d = parsed
				}
			}
			time.Sleep(d)
		case "fail":
			os.Exit(1)
		case "pause":
			stop := make(chan os.Signal, 1)
			signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
			<-stop
		}
	}
	os.Exit(0)
}
