package views

// The templ CLI turns each .templ file into a _templ.go file; both are
// committed, so building never needs the CLI. `make generate` runs this.
//go:generate go run github.com/a-h/templ/cmd/templ@v0.3.1118 generate -path .
