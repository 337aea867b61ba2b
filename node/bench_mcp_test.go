package node_test

import (
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/adam91holt/clawdspace/nodetest"
)

// BenchmarkMCPExecTrue: an exec tool call of `true` over MCP vs the same
// exec over REST, interleaved in one run; x-rest is the ratio of the
// medians (target ≤ 1.10). The MCP client keeps its session, as agents
// do: each call is one POST.
func BenchmarkMCPExecTrue(b *testing.B) {
	n := nodetest.Start(b, nodetest.Options{Namespace: "bmcp"})
	name := benchSpace(b, n, "bmcpexec")
	cs := mcpConnect(b, n.URL, n.HTTP, nodetest.Key, nil)
	args := map[string]any{"name": name, "argv": []string{"true"}}
	mcpRun := func() {
		res, err := cs.CallTool(b.Context(), &mcp.CallToolParams{Name: "exec", Arguments: args})
		if err != nil || res.IsError {
			b.Fatalf("exec tool: %v %v", err, res)
		}
	}
	restRun := func() { post(b, n, "POST", "/api/spaces/"+name+"/exec", `{"command":["true"]}`) }
	warmUp(mcpRun, restRun)
	var p pair
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.both(i, mcpRun, restRun)
	}
	count := float64(b.N)
	b.ReportMetric(float64(p.node.Microseconds())/count, "mcp-µs/op")
	b.ReportMetric(float64(p.raw.Microseconds())/count, "rest-µs/op")
	if mr := median(p.raws); mr > 0 {
		b.ReportMetric(float64(median(p.nodes))/float64(mr), "x-rest")
	}
}
