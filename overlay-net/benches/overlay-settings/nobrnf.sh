for h in $H1 $H2; do ip netns exec $h sysctl -qw net.bridge.bridge-nf-call-iptables=0; done
