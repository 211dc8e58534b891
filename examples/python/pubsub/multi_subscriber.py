import shm_channel.pubsub as shm_pub_sub
import time
import threading
def temperature_monitor():
    """Monitor temperature and alert on extremes"""
    temp_sub = shm_pub_sub.Subscriber("temperature_sensor", 0.0)
    while True:
        temp, success = temp_sub.subscribe()
        if success:
            if temp > 30.0:
                print(f"🔥 HIGH TEMPERATURE ALERT: {temp:.2f}°C")
            elif temp < 10.0:
                print(f"🧊 LOW TEMPERATURE ALERT: {temp:.2f}°C")
        time.sleep(0.05)
def data_logger():
    """Log all temperature readings"""
    temp_sub = shm_pub_sub.Subscriber("temperature_sensor", 0.0)
    while True:
        temp, success = temp_sub.subscribe()
        if success:
            timestamp = time.time()
            print(f"📊 LOG: [{timestamp:.3f}] Temperature: {temp:.2f}°C")
        time.sleep(0.1)
# Start monitoring threads
monitor_thread = threading.Thread(target=temperature_monitor)
logger_thread = threading.Thread(target=data_logger)
monitor_thread.start()
logger_thread.start()
