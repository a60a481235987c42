package metric

// The families of client_golang's process collector, under its names.
var (
	procCPU       = Family{Name: "process_cpu_seconds_total", Help: "Total user and system CPU time spent in seconds.", Type: CounterType}
	procMaxFDs    = Family{Name: "process_max_fds", Help: "Maximum number of open file descriptors.", Type: GaugeType}
	procNetIn     = Family{Name: "process_network_receive_bytes_total", Help: "Number of bytes received by the process over the network.", Type: CounterType}
	procNetOut    = Family{Name: "process_network_transmit_bytes_total", Help: "Number of bytes sent by the process over the network.", Type: CounterType}
	procOpenFDs   = Family{Name: "process_open_fds", Help: "Number of open file descriptors.", Type: GaugeType}
	procRSS       = Family{Name: "process_resident_memory_bytes", Help: "Resident memory size in bytes.", Type: GaugeType}
	procStartTime = Family{Name: "process_start_time_seconds", Help: "Start time of the process since unix epoch in seconds.", Type: GaugeType}
	procVSize     = Family{Name: "process_virtual_memory_bytes", Help: "Virtual memory size in bytes.", Type: GaugeType}
	procVSizeMax  = Family{Name: "process_virtual_memory_max_bytes", Help: "Maximum amount of virtual memory available in bytes.", Type: GaugeType}
)

// NewProcessCollector returns this process's CPU time, memory, file
// descriptors, start time and network bytes under the names of
// client_golang's process collector (process_cpu_seconds_total,
// process_resident_memory_bytes, ...), read from /proc/self on Linux. On
// other systems, and for any file that cannot be read, it writes nothing.
func NewProcessCollector() Collector { return &processCollector{} }

func (*processCollector) describe(dst []Family) []Family {
	return append(dst, procCPU, procMaxFDs, procNetIn, procNetOut, procOpenFDs, procRSS, procStartTime, procVSize, procVSizeMax)
}
