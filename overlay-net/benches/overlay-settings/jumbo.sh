for h in $H1 $H2; do ip -n $h link set ul0 mtu 9000; for d in $(ip -n $h -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^sh'); do ip -n $h link set $d mtu 8950; done; done
for t in $TA $TB; do ip -n $t link set eth0 mtu 8950; done
