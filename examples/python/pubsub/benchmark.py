import shm_channel.pubsub as shm_pub_sub
import time
def benchmark_publish_subscribe():
    """Benchmark publish/subscribe performance"""
    pub = shm_pub_sub.Publisher("benchmark", 0, 10)
    sub = shm_pub_sub.Subscriber("benchmark", 0)
    # Warm up
    for i in range(100):
        pub.publish(i)
        data, success = sub.subscribe()
    # Benchmark
    start_time = time.time()
    messages_sent = 10000
    for i in range(messages_sent):
        pub.publish(i)
    # Measure receive performance
    received_count = 0
    while received_count < messages_sent:
        data, success = sub.subscribe()
        if success:
            received_count += 1
    end_time = time.time()
    duration = end_time - start_time
    print(f"📊 Performance Results:")
    print(f" Messages: {messages_sent}")
    print(f" Duration: {duration:.3f} seconds")
    print(f" Throughput: {messages_sent/duration:.0f} messages/second")
    print(f" Average latency: {duration/messages_sent*1000:.3f} ms")
benchmark_publish_subscribe()
