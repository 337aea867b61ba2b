package api

import (
	"errors"

	"github.com/adam91holt/clawdspace/spaces"
)

// fieldNames are the JSON names of the domain's inputs. A branch is
// "branch" on both routes that take one (repoBranch of a create, branch of
// a push), and the repo destination, which may come from the template,
// keeps the domain's words: the messages stay those of docs/API.md.
var fieldNames = map[spaces.Field]string{
	spaces.FieldName:          "name",
	spaces.FieldMemory:        "memory",
	spaces.FieldCPUs:          "cpus",
	spaces.FieldGPU:           "gpu",
	spaces.FieldImage:         "image",
	spaces.FieldTemplate:      "template",
	spaces.FieldEnv:           "env",
	spaces.FieldEnvFileText:   "envFileText",
	spaces.FieldEnvFileBase64: "envFileBase64",
	spaces.FieldEnvFilePath:   "envFilePath",
	spaces.FieldRepoURL:       "repoUrl",
	spaces.FieldCommand:       "command",
	spaces.FieldTimeout:       "timeoutMs",
	spaces.FieldWorkDir:       "cwd",
	spaces.FieldPath:          "path",
	spaces.FieldPushRepo:      "repoPath",
	spaces.FieldPushRemote:    "remote",
	spaces.FieldPushToken:     "token",
	spaces.FieldBranch:        "branch",
	spaces.FieldTemplateYAML:  "yaml",
	spaces.FieldLimit:         "limit",
	spaces.FieldPort:          "port",
	spaces.FieldNodePort:      "nodePort",
}

// FieldName is the JSON name of the domain's input f (f itself for one
// the API does not name).
func FieldName(f spaces.Field) string {
	if n, ok := fieldNames[f]; ok {
		return n
	}
	return string(f)
}

// ErrorMessage returns the client-safe message of err as the API words
// it, naming fields by their JSON names, when err carries one.
func ErrorMessage(err error) (string, bool) {
	var e *spaces.Error
	if errors.As(err, &e) {
		return e.Text(FieldName), true
	}
	return "", false
}
