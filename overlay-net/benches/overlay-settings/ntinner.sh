for h in $H1 $H2; do ip netns exec $h nft -f - <<'N'
table inet shoalraw {
  chain pre { type filter hook prerouting priority raw; ip saddr 10.0.9.0/24 ip daddr 10.0.9.0/24 ip daddr != 10.0.9.1 notrack; }
}
N
done
