module github.com/rhone/examples/hello-go

go 1.19
