import shm_channel.pubsub as shm_pub_sub
# Test subscriber only (run in separate process)
sub = shm_pub_sub.Subscriber("test_topic", 0)
for i in range(10):
    data, success = sub.subscribe()
    print(f"Received: {data}, Success: {success}")
