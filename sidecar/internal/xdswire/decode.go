package xdswire

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// otherActions names the Route action members other than route.
var otherActions = map[protowire.Number]string{3: "redirect", 7: "direct_response", 17: "filter_action", 18: "non_forwarding_action"}

// Decode decodes one resource of type typeURL from its wire form and
// validates it (see Validate). A validation error comes with the decoded
// resource, so the caller can name it; a wire error comes with nil.
func Decode(typeURL string, b []byte) (Resource, error) {
	var r Resource
	var err error
	switch typeURL {
	case ListenerType:
		l := &Listener{}
		r, err = l, decodeListener(b, l)
	case RouteType:
		rc := &RouteConfiguration{}
		r, err = rc, decodeRouteConfiguration(b, rc)
	case ClusterType:
		c := &Cluster{}
		r, err = c, decodeCluster(b, c)
	case EndpointType:
		c := &ClusterLoadAssignment{}
		r, err = c, decodeCLA(b, c)
	default:
		return nil, fmt.Errorf("%w %q", errUnsupportedType, typeURL)
	}
	if err != nil {
		return nil, err
	}
	return r, Validate(r)
}

// alloc returns *p, allocating it first if nil (a repeated occurrence of
// a message field merges into the first, as protobuf does).
func alloc[T any](p **T) *T {
	if *p == nil {
		*p = new(T)
	}
	return *p
}

func decodeListener(b []byte, l *Listener) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			l.Name = f.str()
		case 2:
			f.msg("address", func(b []byte) error { return decodeAddress(b, alloc(&l.Address)) })
		case 3:
			var fc FilterChain
			f.msg("filter_chains", func(b []byte) error { return decodeFilterChain(b, &fc) })
			l.FilterChains = append(l.FilterChains, fc)
		case 19:
			f.msg("api_listener", func(b []byte) error {
				a := alloc(&l.APIListener)
				return walk(b, func(f *field) error {
					if f.num == 1 {
						f.msg("api_listener", func(b []byte) error { return decodeTypedConfig(b, alloc(&a.APIListener)) })
					}
					return nil
				})
			})
		case 25:
			f.msg("default_filter_chain", func(b []byte) error { return decodeFilterChain(b, alloc(&l.DefaultFilterChain)) })
		}
		return nil
	})
}

func decodeFilterChain(b []byte, fc *FilterChain) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 3:
			var flt Filter
			f.msg("filters", func(b []byte) error {
				return walk(b, func(f *field) error {
					switch f.num {
					case 1:
						flt.Name = f.str()
					case 4:
						flt.TypedConfig = &TypedConfig{}
						f.msg("typed_config", func(b []byte) error { return decodeTypedConfig(b, flt.TypedConfig) })
					case 5:
						flt.TypedConfig = nil // config_discovery: not decoded
					}
					return nil
				})
			})
			fc.Filters = append(fc.Filters, flt)
		case 7:
			fc.Name = f.str()
		}
		return nil
	})
}

// decodeTypedConfig decodes an Any, and its value if it is an HCM.
func decodeTypedConfig(b []byte, t *TypedConfig) error {
	typeURL, value, err := decodeAny(b)
	if err != nil {
		return err
	}
	t.TypeURL, t.HCM = typeURL, nil
	if typeURL == HCMType {
		t.HCM = &HttpConnectionManager{}
		if err := decodeHCM(value, t.HCM); err != nil {
			return fmt.Errorf("http connection manager: %w", err)
		}
	}
	return nil
}

func decodeHCM(b []byte, h *HttpConnectionManager) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 2:
			h.StatPrefix = f.str()
		case 3:
			h.Specifier, h.RouteConfig = "rds", nil
			f.msg("rds", func(b []byte) error {
				r := alloc(&h.RDS)
				return walk(b, func(f *field) error {
					switch f.num {
					case 1:
						f.msg("config_source", func(b []byte) error { return decodeConfigSource(b, alloc(&r.ConfigSource)) })
					case 2:
						r.RouteConfigName = f.str()
					}
					return nil
				})
			})
		case 4:
			h.Specifier, h.RDS = "route_config", nil
			f.msg("route_config", func(b []byte) error { return decodeRouteConfiguration(b, alloc(&h.RouteConfig)) })
		case 31:
			h.Specifier, h.RDS, h.RouteConfig = "scoped_routes", nil, nil
		case 5:
			var hf HTTPFilter
			f.msg("http_filters", func(b []byte) error {
				return walk(b, func(f *field) error {
					switch f.num {
					case 1:
						hf.Name = f.str()
					case 4:
						hf.TypedConfig = &TypedConfig{}
						f.msg("typed_config", func(b []byte) error {
							t, _, err := decodeAny(b)
							hf.TypedConfig.TypeURL = t
							return err
						})
					case 5:
						hf.TypedConfig = nil
					case 6:
						hf.IsOptional = f.bool()
					case 7:
						hf.Disabled = f.bool()
					}
					return nil
				})
			})
			h.HTTPFilters = append(h.HTTPFilters, hf)
		}
		return nil
	})
}

func decodeConfigSource(b []byte, c *ConfigSource) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 1, 2, 5, 8: // path, api_config_source, self, path_config_source
			c.ADS = nil
			f.bytes()
		case 3:
			c.ADS = &Empty{}
			f.bytes()
		case 6:
			c.ResourceAPIVersion = APIVersion(f.int32())
		}
		return nil
	})
}

func decodeRouteConfiguration(b []byte, rc *RouteConfiguration) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			rc.Name = f.str()
		case 2:
			var vh VirtualHost
			f.msg("virtual_hosts", func(b []byte) error { return decodeVirtualHost(b, &vh) })
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
		return nil
	})
}

func decodeVirtualHost(b []byte, vh *VirtualHost) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			vh.Name = f.str()
		case 2:
			vh.Domains = append(vh.Domains, f.str())
		case 3:
			var r Route
			f.msg("routes", func(b []byte) error { return decodeRoute(b, &r) })
			vh.Routes = append(vh.Routes, r)
		}
		return nil
	})
}

func decodeRoute(b []byte, r *Route) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 14:
			r.Name = f.str()
		case 1:
			f.msg("match", func(b []byte) error { return decodeRouteMatch(b, alloc(&r.Match)) })
		case 2:
			r.Specifier = "route"
			f.msg("route", func(b []byte) error { return decodeRouteAction(b, alloc(&r.Route)) })
		case 3, 7, 17, 18:
			r.Specifier, r.Route = otherActions[f.num], nil
			f.bytes()
		}
		return nil
	})
}

func decodeRouteMatch(b []byte, m *RouteMatch) error {
	return walk(b, func(f *field) error {
		set := func(spec string) {
			m.Specifier, m.Prefix, m.Path, m.SafeRegex, m.PathSeparatedPrefix = spec, "", "", nil, ""
		}
		switch f.num {
		case 1:
			set("prefix")
			m.Prefix = f.str()
		case 2:
			set("path")
			m.Path = f.str()
		case 10:
			set("safe_regex")
			f.msg("safe_regex", func(b []byte) error { return decodeRegex(b, alloc(&m.SafeRegex)) })
		case 12:
			set("connect_matcher")
			f.bytes()
		case 14:
			set("path_separated_prefix")
			m.PathSeparatedPrefix = f.str()
		case 15:
			set("path_match_policy")
			f.bytes()
		case 4:
			m.CaseSensitive = f.boolValue()
		case 6:
			var h HeaderMatcher
			f.msg("headers", func(b []byte) error { return decodeHeaderMatcher(b, &h) })
			m.Headers = append(m.Headers, h)
		}
		return nil
	})
}

func decodeRegex(b []byte, r *RegexMatcher) error {
	return walk(b, func(f *field) error {
		if f.num == 2 {
			r.Regex = f.str()
		}
		return nil
	})
}

func decodeHeaderMatcher(b []byte, h *HeaderMatcher) error {
	return walk(b, func(f *field) error {
		set := func(spec string) {
			*h = HeaderMatcher{Name: h.Name, Specifier: spec, InvertMatch: h.InvertMatch, TreatMissingHeaderAsEmpty: h.TreatMissingHeaderAsEmpty}
		}
		switch f.num {
		case 1:
			h.Name = f.str()
		case 4:
			set("exact_match")
			h.ExactMatch = f.str()
		case 11:
			set("safe_regex_match")
			h.SafeRegexMatch = &RegexMatcher{}
			f.msg("safe_regex_match", func(b []byte) error { return decodeRegex(b, h.SafeRegexMatch) })
		case 6:
			set("range_match")
			h.RangeMatch = &Int64Range{}
			f.msg("range_match", func(b []byte) error {
				return walk(b, func(f *field) error {
					switch f.num {
					case 1:
						h.RangeMatch.Start = f.int64()
					case 2:
						h.RangeMatch.End = f.int64()
					}
					return nil
				})
			})
		case 7:
			set("present_match")
			h.PresentMatch = f.bool()
		case 9:
			set("prefix_match")
			h.PrefixMatch = f.str()
		case 10:
			set("suffix_match")
			h.SuffixMatch = f.str()
		case 12:
			set("contains_match")
			h.ContainsMatch = f.str()
		case 13:
			set("string_match")
			h.StringMatch = &StringMatcher{}
			f.msg("string_match", func(b []byte) error { return decodeStringMatcher(b, h.StringMatch) })
		case 8:
			h.InvertMatch = f.bool()
		case 14:
			h.TreatMissingHeaderAsEmpty = f.bool()
		}
		return nil
	})
}

func decodeStringMatcher(b []byte, s *StringMatcher) error {
	return walk(b, func(f *field) error {
		set := func(spec string) {
			*s = StringMatcher{Specifier: spec, IgnoreCase: s.IgnoreCase}
		}
		switch f.num {
		case 1:
			set("exact")
			s.Exact = f.str()
		case 2:
			set("prefix")
			s.Prefix = f.str()
		case 3:
			set("suffix")
			s.Suffix = f.str()
		case 5:
			set("safe_regex")
			s.SafeRegex = &RegexMatcher{}
			f.msg("safe_regex", func(b []byte) error { return decodeRegex(b, s.SafeRegex) })
		case 7:
			set("contains")
			s.Contains = f.str()
		case 8:
			set("custom")
			f.bytes()
		case 6:
			s.IgnoreCase = f.bool()
		}
		return nil
	})
}

func decodeRouteAction(b []byte, a *RouteAction) error {
	return walk(b, func(f *field) error {
		set := func(spec string) {
			a.Specifier, a.Cluster, a.ClusterHeader, a.WeightedClusters = spec, "", "", nil
		}
		switch f.num {
		case 1:
			set("cluster")
			a.Cluster = f.str()
		case 2:
			set("cluster_header")
			a.ClusterHeader = f.str()
		case 3:
			set("weighted_clusters")
			a.WeightedClusters = &WeightedCluster{}
			f.msg("weighted_clusters", func(b []byte) error { return decodeWeightedCluster(b, a.WeightedClusters) })
		case 37:
			set("cluster_specifier_plugin")
			f.str()
		case 39:
			set("inline_cluster_specifier_plugin")
			f.bytes()
		case 8:
			a.Timeout = f.duration()
		case 9:
			f.msg("retry_policy", func(b []byte) error { return decodeRetryPolicy(b, alloc(&a.RetryPolicy)) })
		case 15:
			var hp HashPolicy
			f.msg("hash_policy", func(b []byte) error { return decodeHashPolicy(b, &hp) })
			a.HashPolicy = append(a.HashPolicy, hp)
		}
		return nil
	})
}

func decodeWeightedCluster(b []byte, w *WeightedCluster) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			var cw ClusterWeight
			f.msg("clusters", func(b []byte) error {
				return walk(b, func(f *field) error {
					switch f.num {
					case 1:
						cw.Name = f.str()
					case 2:
						cw.Weight = f.u32Value()
					}
					return nil
				})
			})
			w.Clusters = append(w.Clusters, cw)
		case 3:
			w.TotalWeight = f.u32Value()
		}
		return nil
	})
}

func decodeRetryPolicy(b []byte, p *RetryPolicy) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			p.RetryOn = f.str()
		case 2:
			p.NumRetries = f.u32Value()
		case 3:
			p.PerTryTimeout = f.duration()
		case 5:
			var pr RetryHostPredicate
			f.msg("retry_host_predicate", func(b []byte) error {
				return walk(b, func(f *field) error {
					if f.num == 1 {
						pr.Name = f.str()
					}
					return nil
				})
			})
			p.RetryHostPredicate = append(p.RetryHostPredicate, pr)
		case 6:
			p.HostSelectionRetryMaxAttempts = f.int64()
		case 7:
			p.RetriableStatusCodes = f.uint32s(p.RetriableStatusCodes)
		}
		return nil
	})
}

func decodeHashPolicy(b []byte, hp *HashPolicy) error {
	return walk(b, func(f *field) error {
		set := func(spec string) {
			*hp = HashPolicy{Specifier: spec, Terminal: hp.Terminal}
		}
		// name reads the string field 1 of the nested message.
		name := func(b []byte, dst *string) error {
			return walk(b, func(f *field) error {
				if f.num == 1 {
					*dst = f.str()
				}
				return nil
			})
		}
		switch f.num {
		case 1:
			set("header")
			hp.Header = &HashHeader{}
			f.msg("header", func(b []byte) error { return name(b, &hp.Header.HeaderName) })
		case 2:
			set("cookie")
			c := &HashCookie{}
			hp.Cookie = c
			f.msg("cookie", func(b []byte) error {
				return walk(b, func(f *field) error {
					switch f.num {
					case 1:
						c.Name = f.str()
					case 2:
						c.TTL = f.duration()
					case 3:
						c.Path = f.str()
					}
					return nil
				})
			})
		case 3:
			set("connection_properties")
			cp := &HashConnectionProperties{}
			hp.ConnectionProperties = cp
			f.msg("connection_properties", func(b []byte) error {
				return walk(b, func(f *field) error {
					if f.num == 1 {
						cp.SourceIP = f.bool()
					}
					return nil
				})
			})
		case 5:
			set("query_parameter")
			hp.QueryParameter = &HashQueryParameter{}
			f.msg("query_parameter", func(b []byte) error { return name(b, &hp.QueryParameter.Name) })
		case 6:
			set("filter_state")
			hp.FilterState = &HashFilterState{}
			f.msg("filter_state", func(b []byte) error { return name(b, &hp.FilterState.Key) })
		case 4:
			hp.Terminal = f.bool()
		}
		return nil
	})
}

func decodeCluster(b []byte, c *Cluster) error {
	return walk(b, func(f *field) error {
		setLB := func() { c.RingHashLBConfig, c.MaglevLBConfig, c.LeastRequestLBConfig = nil, nil, nil }
		switch f.num {
		case 1:
			c.Name = f.str()
		case 2:
			c.Type, c.ClusterType = DiscoveryType(f.int32()), nil
		case 38:
			c.Type = DiscoveryStatic
			c.ClusterType = &CustomClusterType{}
			f.msg("cluster_type", func(b []byte) error {
				return walk(b, func(f *field) error {
					if f.num == 1 {
						c.ClusterType.Name = f.str()
					}
					return nil
				})
			})
		case 3:
			f.msg("eds_cluster_config", func(b []byte) error {
				e := alloc(&c.EDSClusterConfig)
				return walk(b, func(f *field) error {
					switch f.num {
					case 1:
						f.msg("eds_config", func(b []byte) error { return decodeConfigSource(b, alloc(&e.EDSConfig)) })
					case 2:
						e.ServiceName = f.str()
					}
					return nil
				})
			})
		case 4:
			c.ConnectTimeout = f.duration()
		case 6:
			c.LBPolicy = LBPolicy(f.int32())
		case 10:
			f.msg("circuit_breakers", func(b []byte) error { return decodeCircuitBreakers(b, alloc(&c.CircuitBreakers)) })
		case 19:
			f.msg("outlier_detection", func(b []byte) error { return decodeOutlierDetection(b, alloc(&c.OutlierDetection)) })
		case 27:
			f.msg("common_lb_config", func(b []byte) error {
				cl := alloc(&c.CommonLBConfig)
				return walk(b, func(f *field) error {
					if f.num == 1 {
						f.msg("healthy_panic_threshold", func(b []byte) error {
							p := alloc(&cl.HealthyPanicThreshold)
							return walk(b, func(f *field) error {
								if f.num == 1 {
									p.Value = f.double()
								}
								return nil
							})
						})
					}
					return nil
				})
			})
		case 23:
			setLB()
			rh := &RingHashLBConfig{}
			c.RingHashLBConfig = rh
			f.msg("ring_hash_lb_config", func(b []byte) error {
				return walk(b, func(f *field) error {
					switch f.num {
					case 1:
						rh.MinimumRingSize = f.u64Value()
					case 3:
						rh.HashFunction = HashFunction(f.int32())
					case 4:
						rh.MaximumRingSize = f.u64Value()
					}
					return nil
				})
			})
		case 52:
			setLB()
			m := &MaglevLBConfig{}
			c.MaglevLBConfig = m
			f.msg("maglev_lb_config", func(b []byte) error {
				return walk(b, func(f *field) error {
					if f.num == 1 {
						m.TableSize = f.u64Value()
					}
					return nil
				})
			})
		case 37:
			setLB()
			lr := &LeastRequestLBConfig{}
			c.LeastRequestLBConfig = lr
			f.msg("least_request_lb_config", func(b []byte) error {
				return walk(b, func(f *field) error {
					if f.num == 1 {
						lr.ChoiceCount = f.u32Value()
					}
					return nil
				})
			})
		case 34, 56: // original_dst_lb_config, round_robin_lb_config
			setLB()
			f.bytes()
		case 36:
			f.msg("typed_extension_protocol_options", func(b []byte) error {
				var key string
				var opts *ProtocolOptions
				err := walk(b, func(f *field) error {
					switch f.num {
					case 1:
						key = f.str()
					case 2:
						opts = &ProtocolOptions{}
						f.msg("value", func(b []byte) error { return decodeProtocolOptions(b, opts) })
					}
					return nil
				})
				if err != nil {
					return err
				}
				if c.TypedExtensionProtocolOptions == nil {
					c.TypedExtensionProtocolOptions = map[string]*ProtocolOptions{}
				}
				if opts == nil {
					opts = &ProtocolOptions{}
				}
				c.TypedExtensionProtocolOptions[key] = opts
				return nil
			})
		}
		return nil
	})
}

func decodeCircuitBreakers(b []byte, cb *CircuitBreakers) error {
	return walk(b, func(f *field) error {
		if f.num != 1 {
			return nil
		}
		var t Thresholds
		f.msg("thresholds", func(b []byte) error {
			return walk(b, func(f *field) error {
				switch f.num {
				case 1:
					t.Priority = RoutingPriority(f.int32())
				case 2:
					t.MaxConnections = f.u32Value()
				case 3:
					t.MaxPendingRequests = f.u32Value()
				case 4:
					t.MaxRequests = f.u32Value()
				case 5:
					t.MaxRetries = f.u32Value()
				}
				return nil
			})
		})
		cb.Thresholds = append(cb.Thresholds, t)
		return nil
	})
}

func decodeOutlierDetection(b []byte, o *OutlierDetection) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			o.Consecutive5xx = f.u32Value()
		case 2:
			o.Interval = f.duration()
		case 3:
			o.BaseEjectionTime = f.duration()
		case 4:
			o.MaxEjectionPercent = f.u32Value()
		case 5:
			o.EnforcingConsecutive5xx = f.u32Value()
		case 6:
			o.EnforcingSuccessRate = f.u32Value()
		case 10:
			o.ConsecutiveGatewayFailure = f.u32Value()
		case 11:
			o.EnforcingConsecutiveGatewayFailure = f.u32Value()
		case 17:
			o.EnforcingFailurePercentage = f.u32Value()
		case 21:
			o.MaxEjectionTime = f.duration()
		}
		return nil
	})
}

// decodeProtocolOptions decodes an Any of typed_extension_protocol_options.
func decodeProtocolOptions(b []byte, o *ProtocolOptions) error {
	typeURL, value, err := decodeAny(b)
	if err != nil {
		return err
	}
	o.TypeURL = typeURL
	if typeURL != HTTPProtocolOptionsType {
		return nil
	}
	return walk(value, func(f *field) error {
		set := func() { o.ExplicitHTTPConfig, o.UseDownstreamProtocolConfig, o.AutoConfig = nil, nil, nil }
		switch f.num {
		case 3:
			set()
			e := &ExplicitHTTPConfig{}
			o.ExplicitHTTPConfig = e
			f.msg("explicit_http_config", func(b []byte) error {
				return walk(b, func(f *field) error {
					switch f.num {
					case 1, 2, 3:
						*e = ExplicitHTTPConfig{}
						f.bytes()
					}
					switch f.num {
					case 1:
						e.HTTPProtocolOptions = &Empty{}
					case 2:
						e.HTTP2ProtocolOptions = &Empty{}
					case 3:
						e.HTTP3ProtocolOptions = &Empty{}
					}
					return nil
				})
			})
		case 4:
			set()
			o.UseDownstreamProtocolConfig = &Empty{}
			f.bytes()
		case 5:
			set()
			o.AutoConfig = &Empty{}
			f.bytes()
		}
		return nil
	})
}

func decodeCLA(b []byte, c *ClusterLoadAssignment) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			c.ClusterName = f.str()
		case 2:
			var l LocalityLBEndpoints
			f.msg("endpoints", func(b []byte) error { return decodeLocalityLBEndpoints(b, &l) })
			c.Endpoints = append(c.Endpoints, l)
		}
		return nil
	})
}

func decodeLocalityLBEndpoints(b []byte, l *LocalityLBEndpoints) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			f.msg("locality", func(b []byte) error { return decodeLocality(b, alloc(&l.Locality)) })
		case 2:
			var e LBEndpoint
			f.msg("lb_endpoints", func(b []byte) error { return decodeLBEndpoint(b, &e) })
			l.LBEndpoints = append(l.LBEndpoints, e)
		case 3:
			l.LoadBalancingWeight = f.u32Value()
		case 5:
			l.Priority = f.uint32()
		}
		return nil
	})
}

func decodeLBEndpoint(b []byte, e *LBEndpoint) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			e.EndpointName = ""
			f.msg("endpoint", func(b []byte) error {
				ep := alloc(&e.Endpoint)
				return walk(b, func(f *field) error {
					switch f.num {
					case 1:
						f.msg("address", func(b []byte) error { return decodeAddress(b, alloc(&ep.Address)) })
					case 3:
						ep.Hostname = f.str()
					}
					return nil
				})
			})
		case 5:
			e.Endpoint = nil
			e.EndpointName = f.str()
		case 2:
			e.HealthStatus = HealthStatus(f.int32())
		case 4:
			e.LoadBalancingWeight = f.u32Value()
		}
		return nil
	})
}

func decodeAddress(b []byte, a *Address) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			a.Specifier, a.Pipe = "socket_address", nil
			f.msg("socket_address", func(b []byte) error {
				s := alloc(&a.SocketAddress)
				return walk(b, func(f *field) error {
					switch f.num {
					case 1:
						s.Protocol = SocketProtocol(f.int32())
					case 2:
						s.Address = f.str()
					case 3:
						s.PortValue, s.NamedPort = f.uint32(), ""
					case 4:
						s.PortValue, s.NamedPort = 0, f.str()
					}
					return nil
				})
			})
		case 2:
			a.Specifier, a.SocketAddress = "pipe", nil
			f.msg("pipe", func(b []byte) error {
				p := alloc(&a.Pipe)
				return walk(b, func(f *field) error {
					if f.num == 1 {
						p.Path = f.str()
					}
					return nil
				})
			})
		case 3:
			a.Specifier, a.SocketAddress, a.Pipe = "envoy_internal_address", nil, nil
			f.bytes()
		}
		return nil
	})
}
