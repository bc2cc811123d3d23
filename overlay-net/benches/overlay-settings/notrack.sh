for h in $H1 $H2; do ip netns exec $h nft -f - <<'N'
table inet shoalraw {
  chain pre { type filter hook prerouting priority raw; udp dport 4789 notrack; }
  chain out { type filter hook output priority raw; udp dport 4789 notrack; }
}
N
done
