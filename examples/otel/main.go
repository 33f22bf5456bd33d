package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "otel:", err)
		os.Exit(1)
	}
}

// run makes a few calls against the in-memory JSM, one of them through an
// injected 503, and prints the spans and metrics recorded in memory. In a
// service, the providers would export to a collector instead.
func run(ctx context.Context, out io.Writer) error {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(RedactQuery(spans)))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = tp.Shutdown(ctx); _ = mp.Shutdown(ctx) }()

	srv := servicedesktest.NewServer(servicedesktest.WithCustomer("1", "mary@example.com", "Mary Jones"))
	defer srv.Close()
	opts, err := Instrument(tp, mp)
	if err != nil {
		return err
	}
	opts = append(opts, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
	c, err := servicedesk.NewClient(srv.URL, opts...)
	if err != nil {
		return err
	}

	srv.Inject(servicedesktest.Fault{Method: http.MethodGet, Times: 1, Status: http.StatusServiceUnavailable})
	if _, err := c.Customers.List(ctx, "HELP", &servicedesk.ListCustomersOptions{Query: "mary@example.com"}); err != nil {
		return err
	}
	cust, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
	if err != nil {
		return err
	}
	if err := c.Customers.Add(ctx, "HELP", servicedesk.CustomerIDs{AccountIDs: []string{cust.AccountID}}); err != nil {
		return err
	}

	fmt.Fprintln(out, "Spans (a call, and its attempts below it):")
	ended := spans.Ended()
	for _, s := range ended {
		if s.Parent().IsValid() && hasSpan(ended, s.Parent().SpanID().String()) {
			continue // printed under its call
		}
		fmt.Fprintf(out, "  %s (%s)\n", s.Name(), s.Status().Code)
		for _, child := range ended {
			if child.Parent().SpanID() == s.SpanContext().SpanID() {
				fmt.Fprintf(out, "    %s %s\n", child.Name(), attr(child, "http.response.status_code"))
			}
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		return err
	}
	fmt.Fprintln(out, "Metrics:")
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != instrumentationName {
			continue
		}
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range data.DataPoints {
					op, _ := p.Attributes.Value("servicedesk.operation")
					lines = append(lines, fmt.Sprintf("  %s{%s} %d", m.Name, op.AsString(), p.Value))
				}
			case metricdata.Histogram[float64]:
				for _, p := range data.DataPoints {
					op, _ := p.Attributes.Value("servicedesk.operation")
					lines = append(lines, fmt.Sprintf("  %s{%s} count %d", m.Name, op.AsString(), p.Count))
				}
			}
		}
	}
	sort.Strings(lines)
	fmt.Fprintln(out, strings.Join(lines, "\n"))
	return nil
}

func hasSpan(spans []sdktrace.ReadOnlySpan, id string) bool {
	for _, s := range spans {
		if s.SpanContext().SpanID().String() == id {
			return true
		}
	}
	return false
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}
