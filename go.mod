module github.com/relupo/relupo

go 1.26

require (
	github.com/dlclark/regexp2 v1.11.5
	golang.org/x/text v0.44.0
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
)
