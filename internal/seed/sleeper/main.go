// Command sleeper is the only program in the test images: it exits at once,
// or sleeps for an hour when its first argument is "sleep" (a running container).
package main

import (
	"os"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sleep" {
		time.Sleep(time.Hour)
	}
	os.Exit(0)
}
