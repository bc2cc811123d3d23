#!/bin/sh
# Standalone prototype (not a SHOAL_BENCH_SETUP hook): the overlay layout
# proposed for issue 15's Done-when 5, built by hand with `ip`, next to the
# as-shipped layout, so the two can be compared in one harness.
#   netns   : bridge + VXLAN in a namespace of their own (bridge-nf-call-* = 0
#             there), VXLAN created by the host's socket so its UDP socket and
#             VTEP stay in the host namespace, a veth "gateway link" to the host
#             with onlink routes to static neighbours (no addresses on the link).
#   shipped : bridge + VXLAN in the host namespace (bridge-nf-call-iptables = 1).
# Usage: sudo sh netns-layout.sh netns|shipped   (python3 streams, 2 s rounds)
# Everything lives in namespaces named nsx<variant>-*, removed on exit.
DIR=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp -d)
set -e
V=$1; P=nsx$V
cleanup() { for i in 1 2; do for k in h n t; do ip netns del $P-$k$i 2>/dev/null || true; done; done; }
trap 'cleanup; rm -rf "$OUT"' EXIT
for i in 1 2; do for k in h n t; do ip netns add $P-$k$i; done; done
ip link add u1 netns $P-h1 type veth peer name u2 netns $P-h2
mac() { printf '02:42:0a:4d:00:%02x' $1; }
for i in 1 2; do
  o=$((3-i)); h=$P-h$i; t=$P-t$i
  ip -n $h addr add 192.168.252.$i/24 dev u$i; ip -n $h link set u$i up; ip -n $h link set lo up
  if [ $V = netns ]; then n=$P-n$i; else n=$h; fi
  if [ $V = netns ]; then
    ip netns exec $n sh -c 'for f in iptables ip6tables arptables; do echo 0 > /proc/sys/net/bridge/bridge-nf-call-$f; done; echo 1 > /proc/sys/net/ipv4/ip_forward'
  fi
  ip -n $n link add br0 mtu 1450 type bridge; ip -n $n addr add 10.77.0.1/24 dev br0; ip -n $n link set br0 up
  ip -n $h link add vx0 netns $n mtu 1450 type vxlan id 77 local 192.168.252.$i dstport 4789 nolearning proxy
  ip -n $n link set vx0 master br0; bridge -n $n link set dev vx0 learning off; ip -n $n link set vx0 up
  ip -n $n link add tv0 mtu 1450 type veth peer name eth0 netns $t
  ip -n $t link set eth0 address $(mac 1$i); ip -n $t addr add 10.77.0.1$i/24 dev eth0; ip -n $t link set eth0 up; ip -n $t link set lo up
  ip -n $t route add default via 10.77.0.1
  ip -n $n link set tv0 master br0 up
  ip -n $n neigh replace 10.77.0.1$o lladdr $(mac 1$o) dev vx0 nud permanent
  bridge -n $n fdb replace $(mac 1$o) dev vx0 dst 192.168.252.$o self permanent
  bridge -n $n fdb replace $(mac 1$o) dev vx0 master static
  if [ $V = netns ]; then
    ip -n $h link add gw0 mtu 1450 type veth peer name gw0 netns $n
    hmac=$(ip -n $h -br link show gw0 | awk '{print $3}'); nmac=$(ip -n $n -br link show gw0 | awk '{print $3}')
    ip -n $n link set gw0 up; ip -n $h link set gw0 up
    ip -n $h neigh replace 10.77.0.1 lladdr $nmac dev gw0 nud permanent
    ip -n $h route add 10.77.0.0/24 via 10.77.0.1 dev gw0 onlink
    ip -n $n neigh replace 169.254.0.1 lladdr $hmac dev gw0 nud permanent
    ip -n $n route add default via 169.254.0.1 dev gw0 onlink
  fi
done
echo "[$V] brnf where the bridge is: $(ip netns exec $n cat /proc/sys/net/bridge/bridge-nf-call-iptables)"
R=6
ip netns exec $P-t1 python3 "$DIR"/stream.py srv 5201 $((R+2)) > "$OUT"/ov.txt &
ip netns exec $P-h1 python3 "$DIR"/stream.py srv 5202 $((R+1)) > "$OUT"/ul.txt &
sleep 0.5
if [ $V = netns ]; then ip netns exec $P-h1 python3 "$DIR"/stream.py cli 10.77.0.11 5201 0; echo "[$V] host1 -> task1 via the gateway link: $(sleep 0.2; tail -1 "$OUT"/ov.txt)"; else ip netns exec $P-t1 python3 "$DIR"/stream.py cli 10.77.0.12 5201 0 2>/dev/null || true; ip netns exec $P-t1 true; fi
for r in $(seq 0 $R); do
  if [ $((r%2)) -eq 0 ]; then
    ip netns exec $P-t2 python3 "$DIR"/stream.py cli 10.77.0.11 5201 2; ip netns exec $P-h2 python3 "$DIR"/stream.py cli 192.168.252.1 5202 2
  else
    ip netns exec $P-h2 python3 "$DIR"/stream.py cli 192.168.252.1 5202 2; ip netns exec $P-t2 python3 "$DIR"/stream.py cli 10.77.0.11 5201 2
  fi
done
[ $V = netns ] || ip netns exec $P-t2 python3 "$DIR"/stream.py cli 10.77.0.11 5201 0
wait
echo "[$V] overlay Gbit/s, per round: $(grep -v connect "$OUT"/ov.txt | tr '\n' ' ')"
echo "[$V] underlay Gbit/s, per round: $(tr '\n' ' ' < "$OUT"/ul.txt)"
cat /proc/loadavg
