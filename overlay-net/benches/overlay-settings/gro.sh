for h in $H1 $H2; do for d in $(ip -n $h -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(ul0|shv)'); do ip netns exec $h ethtool -K $d gro on; done; done
for t in $TA $TB; do ip netns exec $t ethtool -K eth0 gro on; done
