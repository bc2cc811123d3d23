set -e
for i in 1 2; do
  if [ $i = 1 ]; then h=$H1; me=1; other=2; peer_ip=10.0.9.3; peer_mac=02:42:0a:00:09:03; else h=$H2; me=2; other=1; peer_ip=10.0.9.2; peer_mac=02:42:0a:00:09:02; fi
  ip -n $h link del shvx-9000
  ip -n $h link add shvx-9000 mtu 1450 type vxlan id 9000 local 192.168.251.$me dstport 4789 nolearning proxy noudpcsum
  ip -n $h link set shvx-9000 master shbr-9000
  bridge -n $h link set dev shvx-9000 learning off
  ip -n $h link set shvx-9000 up
  ip -n $h neigh replace $peer_ip lladdr $peer_mac dev shvx-9000 nud permanent
  bridge -n $h fdb replace $peer_mac dev shvx-9000 dst 192.168.251.$other self permanent
  bridge -n $h fdb replace $peer_mac dev shvx-9000 master static
done
ip -n $H1 -d link show shvx-9000 | grep -o "noudpcsum"
