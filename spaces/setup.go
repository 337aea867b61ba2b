package spaces

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

const (
	// DefaultEnvFilePath is where an env file goes unless the request says.
	DefaultEnvFilePath = "/workspace/.env"
	// DefaultRepoDest is the clone folder unless the request or template says.
	DefaultRepoDest = "repo"
	maxEnvFileBytes = 1 << 20
	cloneTimeout    = 15 * time.Minute
	pushTimeout     = 15 * time.Minute
)

// EnvFile is a file of environment settings written into a new space.
type EnvFile struct {
	Path    string // absolute, under /workspace
	Content []byte
}

// Repo is a repository cloned into a new space.
type Repo struct {
	URL    string
	Branch string
	Dest   string // relative to /workspace
}

var (
	scpLikeRE = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$`)
	remoteRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// NewEnvFile checks an env file request: exactly one of text or base64,
// a path under /workspace/.
func NewEnvFile(text, b64 *string, p string) (*EnvFile, error) {
	if text == nil && b64 == nil {
		if p != "" {
			return nil, AboutField(ErrInvalid, FieldEnvFileText, "an env file path needs the env file's text (or its base64)")
		}
		return nil, nil
	}
	if text != nil && b64 != nil {
		return nil, AboutField(ErrInvalid, FieldEnvFileText, "give the env file as text or as base64, not both")
	}
	var content []byte
	if text != nil {
		content = []byte(*text)
	} else {
		var err error
		if content, err = base64.StdEncoding.DecodeString(*b64); err != nil {
			return nil, FieldErrorf(ErrInvalid, FieldEnvFileBase64, "is not valid base64")
		}
	}
	if len(content) > maxEnvFileBytes {
		return nil, AboutField(ErrTooLarge, FieldEnvFileText, "the env file is larger than %d bytes", maxEnvFileBytes)
	}
	if p == "" {
		p = DefaultEnvFilePath
	}
	if !strings.HasPrefix(p, WorkspacePath+"/") {
		return nil, FieldErrorf(ErrInvalid, FieldEnvFilePath, "must be under /workspace/")
	}
	abs, err := WorkspacePathOf(p)
	if err != nil {
		return nil, FieldErrorf(ErrInvalid, FieldEnvFilePath, "is not valid: %s", err.Error())
	}
	return &EnvFile{Path: abs, Content: content}, nil
}

// ValidateRepoURL accepts https://… and user@host:path, as the contract says.
func ValidateRepoURL(u string) error {
	switch {
	case u == "":
		return FieldErrorf(ErrInvalid, FieldRepoURL, "is required")
	case strings.HasPrefix(u, "-"):
		return FieldErrorf(ErrInvalid, FieldRepoURL, "must not start with '-'")
	case strings.ContainsAny(u, " \t\r\n\x00"):
		return FieldErrorf(ErrInvalid, FieldRepoURL, "must not contain spaces or control characters")
	case strings.HasPrefix(u, "https://"):
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" {
			return FieldErrorf(ErrInvalid, FieldRepoURL, "is not a valid https URL")
		}
		return nil
	case scpLikeRE.MatchString(u):
		return nil
	}
	return FieldErrorf(ErrInvalid, FieldRepoURL, "must be https://… or user@host:path")
}

// ValidateBranch checks a branch name much as git check-ref-format does.
func ValidateBranch(b string) error {
	switch {
	case b == "":
		return FieldErrorf(ErrInvalid, FieldBranch, "is required")
	case len(b) > 255:
		return FieldErrorf(ErrInvalid, FieldBranch, "is too long")
	case strings.HasPrefix(b, "-"):
		return FieldErrorf(ErrInvalid, FieldBranch, "must not start with '-'")
	case strings.Contains(b, ".."), strings.Contains(b, "@{"), strings.Contains(b, "//"):
		return FieldErrorf(ErrInvalid, FieldBranch, "%q is not a valid branch name", b)
	case strings.HasSuffix(b, "/"), strings.HasSuffix(b, "."), strings.HasSuffix(b, ".lock"), strings.HasPrefix(b, "/"):
		return FieldErrorf(ErrInvalid, FieldBranch, "%q is not a valid branch name", b)
	}
	for _, r := range b {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return FieldErrorf(ErrInvalid, FieldBranch, "%q is not a valid branch name", b)
		}
	}
	return nil
}

// NewRepo checks a clone request against the template's network posture.
func NewRepo(u, branch, dest string, tpl Template) (*Repo, error) {
	if u == "" {
		if branch != "" || dest != "" {
			return nil, FieldErrorf(ErrInvalid, FieldRepoURL, "is required with a branch or a destination")
		}
		return nil, nil
	}
	if tpl.NetworkMode() == NetworkNone {
		return nil, AboutField(ErrInvalid, FieldTemplate, "template %q has no network, so the repository cannot be cloned", tpl.Name)
	}
	if err := ValidateRepoURL(u); err != nil {
		return nil, err
	}
	if branch != "" {
		if err := ValidateBranch(branch); err != nil {
			return nil, err
		}
	}
	if dest == "" {
		dest = tpl.Workspace.DefaultRepoDest
	}
	if dest == "" {
		dest = DefaultRepoDest
	}
	if err := ValidateRepoDest(dest); err != nil {
		return nil, err
	}
	if _, err := WorkspacePathOf(dest); err != nil {
		return nil, FieldErrorf(ErrInvalid, FieldRepoDest, "is not valid: %s", err.Error())
	}
	return &Repo{URL: u, Branch: branch, Dest: strings.Trim(dest, "/")}, nil
}

// redactURL drops credentials from a URL for the audit log.
func redactURL(u string) string {
	if pu, err := url.Parse(u); err == nil && pu.User != nil {
		pu.User = nil
		return pu.String()
	}
	return u
}

// gitAuthEnv gives git an Authorization header for host through the
// environment (GIT_CONFIG_*), so the token is never in argv, a file or
// .git/config. An empty host means every host (an explicit push token).
func gitAuthEnv(host, token string) []string {
	key := "http.extraHeader"
	if host != "" {
		key = "http.https://" + host + "/.extraHeader"
	}
	cred := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + token))
	return []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=" + key, "GIT_CONFIG_VALUE_0=Authorization: Basic " + cred}
}

// ValidateToken refuses tokens that could smuggle another header.
func ValidateToken(t string) error {
	if len(t) > 4096 {
		return FieldErrorf(ErrInvalid, FieldPushToken, "is too long")
	}
	for _, r := range t {
		if r <= 0x20 || r >= 0x7f {
			return FieldErrorf(ErrInvalid, FieldPushToken, "must be printable ASCII without spaces")
		}
	}
	return nil
}

// scrub removes a secret from text shown to clients.
func scrub(text, secret string) string {
	if secret == "" {
		return text
	}
	text = strings.ReplaceAll(text, secret, "***")
	return strings.ReplaceAll(text, base64.StdEncoding.EncodeToString([]byte("x-access-token:"+secret)), "***")
}

// setUp writes the env file and clones the repository of a new space.
func (s *Service) setUp(ctx context.Context, name string, env map[string]string, ef *EnvFile, repo *Repo) error {
	if ef != nil {
		if err := s.writeInternal(ctx, name, ef.Path, 0o600, ef.Content); err != nil {
			return fmt.Errorf("writing the env file: %w", err)
		}
	}
	if repo == nil {
		return nil
	}
	cmd := []string{"git", "clone"}
	if repo.Branch != "" {
		cmd = append(cmd, "--branch", repo.Branch)
	}
	cmd = append(cmd, "--", repo.URL, WorkspacePath+"/"+repo.Dest)
	spec := ExecSpec{Cmd: cmd, Env: []string{"GIT_TERMINAL_PROMPT=0"}}
	token := env["GITHUB_TOKEN"]
	if token != "" {
		if pu, err := url.Parse(repo.URL); err == nil && pu.Scheme == "https" && s.tokenHost(pu.Host) {
			spec.Env = append(spec.Env, gitAuthEnv(pu.Host, token)...)
			spec.Credentials = true
		}
	}
	var stderr limitedBuffer
	spec.Stderr, spec.MaxOutput = &stderr, maxInternalOutput
	cctx, cancel := context.WithTimeout(ctx, cloneTimeout)
	defer cancel()
	code, err := s.cfg.Engine.Exec(cctx, name, spec)
	if err != nil {
		return fmt.Errorf("cloning: %w", err)
	}
	if code != 0 {
		msg := strings.TrimSpace(scrub(stderr.String(), token))
		if MissingTool(code) {
			msg = "this space's image has no git"
		}
		return AboutField(ErrInvalid, FieldRepoURL, "cloning %s failed: %s", redactURL(repo.URL), msg)
	}
	return nil
}

func (s *Service) tokenHost(host string) bool {
	for _, h := range s.cfg.GitTokenHosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// writeInternal writes a whole file for the node itself (no audit row).
func (s *Service) writeInternal(ctx context.Context, name, abs string, mode uint32, content []byte) error {
	return s.cfg.Engine.WriteFile(ctx, name, abs, FileContent{Mode: mode, Size: int64(len(content)), Content: bytes.NewReader(content)})
}

// gitSafeConfig keeps the repository's own programs (hooks, credential
// helpers, askpass, ssh commands) from running with the token in their
// environment.
func gitSafeConfig() []string {
	return []string{"-c", "core.hooksPath=/dev/null", "-c", "credential.helper=", "-c", "core.askPass=", "-c", "core.sshCommand=ssh"}
}

// PushRequest is a git push from a repository in a space.
type PushRequest struct {
	RepoPath string
	Remote   string
	Branch   string
	Token    string
}

// PushResult is the output of a git push.
type PushResult struct {
	Stdout, Stderr string
	ExitCode       int
}

// Push runs git push in a space, built from argv (never a shell string).
// The token lives only in the environment of that one git process and is
// scrubbed from what comes back.
func (s *Service) Push(ctx context.Context, c Caller, name string, req PushRequest) (PushResult, error) {
	if err := s.authorize(ctx, c, name, ActExec); err != nil {
		return PushResult{}, err
	}
	var res PushResult
	if err := ValidateName(name); err != nil {
		return res, SpaceNotFound()
	}
	if req.RepoPath == "" {
		req.RepoPath = "/"
	}
	abs, err := WorkspacePathOf(req.RepoPath)
	if err != nil {
		return res, FieldErrorf(ErrInvalid, FieldPushRepo, "is not valid: %s", err.Error())
	}
	if req.Remote == "" {
		req.Remote = "origin"
	}
	if !remoteRE.MatchString(req.Remote) {
		return res, FieldErrorf(ErrInvalid, FieldPushRemote, "must be a remote name such as origin")
	}
	if req.Branch != "" {
		if err := ValidateBranch(req.Branch); err != nil {
			return res, err
		}
	}
	if err := ValidateToken(req.Token); err != nil {
		return res, err
	}
	if err := s.audit(ctx, c, name, EventGitPush, map[string]any{"repoPath": DisplayPath(abs), "remote": req.Remote, "branch": req.Branch}); err != nil {
		return res, err
	}
	if err := s.fileAccess(ctx, name); err != nil {
		return res, err
	}
	// git runs as the space's user: the check only gives a clear message.
	fi, err := s.cfg.Engine.StatPath(ctx, name, abs, true)
	if err != nil && (!errors.Is(err, ErrNotFound) || errors.Is(err, SpaceNotFound())) {
		return res, err
	}
	if err != nil || fi.Type != TypeDir {
		return res, FieldErrorf(ErrInvalid, FieldPushRepo, "%s is not a folder", DisplayPath(abs))
	}
	// Hooks are the repository's own code: they do not run with the token.
	cmd := append(append([]string{"git"}, gitSafeConfig()...), "-C", abs, "push", "--", req.Remote)
	if req.Branch != "" {
		cmd = append(cmd, req.Branch)
	}
	spec := ExecSpec{Cmd: cmd, Env: []string{"GIT_TERMINAL_PROMPT=0"}}
	if req.Token != "" {
		host, err := s.remoteHost(ctx, name, abs, req.Remote)
		if err != nil {
			return res, err
		}
		// The header goes to the remote's host and nowhere else, over
		// verified TLS and no proxy, whatever the repository configures.
		spec.Env = append(spec.Env, gitAuthEnv(host, req.Token)...)
		spec.Credentials = true
		spec.Cmd = append(append(append([]string{}, spec.Cmd[:1]...), "-c", "http.https://"+host+"/.sslVerify=true",
			"-c", "http.https://"+host+"/.proxy=", "-c", "http.sslVerify=true", "-c", "http.proxy="), spec.Cmd[1:]...)
	}
	var stdout, stderr limitedBuffer
	spec.Stdout, spec.Stderr = &stdout, &stderr
	pctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	done := s.busy.hold(name)
	defer func() {
		s.touch(context.WithoutCancel(ctx), name)
		done()
	}()
	code, err := s.cfg.Engine.Exec(pctx, name, spec)
	if err != nil {
		return res, err
	}
	res = PushResult{Stdout: scrub(stdout.String(), req.Token), Stderr: scrub(stderr.String(), req.Token), ExitCode: code}
	if code != 0 {
		msg := strings.TrimSpace(res.Stderr)
		if MissingTool(code) {
			msg = "this space's image has no git"
		}
		return res, Errorf(ErrInvalid, "git push failed: %s", msg)
	}
	return res, nil
}

// maxInternalOutput bounds the output of the node's own short execs (df,
// du, git clone's messages): more fails them rather than fill the node.
const maxInternalOutput = 4 << 20

// limitedBuffer keeps the first 1 MiB written to it.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := 1<<20 - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// remoteHost returns the host of an https remote; a token is only sent over
// https, to that host.
func (s *Service) remoteHost(ctx context.Context, name, repo, remote string) (string, error) {
	var out, errb limitedBuffer
	code, err := s.cfg.Engine.Exec(ctx, name, ExecSpec{Cmd: []string{"git", "-C", repo, "remote", "get-url", "--push", remote}, Stdout: &out, Stderr: &errb, MaxOutput: maxInternalOutput})
	if err != nil {
		return "", err
	}
	if MissingTool(code) {
		return "", Errorf(ErrInvalid, "git push failed: this space's image has no git")
	}
	if code != 0 {
		return "", Errorf(ErrInvalid, "git push failed: %s", strings.TrimSpace(errb.String()))
	}
	u, err := url.Parse(strings.TrimSpace(out.String()))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", Errorf(ErrInvalid, "the token is only sent to https remotes; %s is not one", remote)
	}
	// Code in the space chooses the remote's URL: the token goes only to
	// hosts the node's owner allows (--git-token-hosts).
	if !s.tokenHost(u.Host) {
		return "", Errorf(ErrForbidden, "the token is only sent to the node's git token hosts, and %s is not one", u.Host)
	}
	return u.Host, nil
}
