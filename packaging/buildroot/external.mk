include $(sort $(wildcard $(BR2_EXTERNAL_ORBIT_AGENT_PATH)/package/*/*.mk))
