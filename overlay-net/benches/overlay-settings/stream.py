import socket,sys,time
if sys.argv[1]=="srv":
    s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("0.0.0.0",int(sys.argv[2])));s.listen(8)
    for _ in range(int(sys.argv[3])):
        c,_=s.accept();buf=bytearray(1<<20);n=0;t=time.time()
        while True:
            b=c.recv_into(buf)
            if not b: break
            n+=b
        dt=time.time()-t
        print("%.2f"%(n*8/dt/1e9) if n>1000 else "connect-ok",flush=True)
        c.close()
else:
    s=socket.create_connection((sys.argv[2],int(sys.argv[3])),timeout=3);d=bytes(1<<20);e=time.time()+float(sys.argv[4])
    while time.time()<e: s.sendall(d)
    s.close()
