package gpu

// recorded is what each recording in testdata/ holds, written out by hand
// from the files: the GPUs of query-gpu.csv with the MIG devices of
// list-gpus.txt.
var recorded = []struct {
	dir  string
	want []GPU
}{
	{
		dir: "a100-sxm4-80gb-x4-mig",
		want: []GPU{
			{
				Index: 0, UUID: "GPU-f16a7018-e098-a3cd-c0f6-156f1bf8b692", Name: "NVIDIA A100-SXM4-80GB", MemoryMB: 81920,
				MIGCapable: true, MIGEnabled: true, MIGEnabledAfterReset: true,
				MIGDevices: []MIGDevice{
					{0, "1g.10gb", "MIG-a565c26d-40d3-5f04-ac97-13fc5e3248d6"},
					{1, "1g.10gb", "MIG-4340ad36-23a6-5b90-acfb-d758910186e7"},
					{2, "1g.10gb", "MIG-6ea62523-ee24-50b8-b151-2eb9744a6f93"},
					{3, "1g.10gb", "MIG-8612c39c-8306-54be-a5e6-62dc016e71f7"},
					{4, "1g.10gb", "MIG-f7bcf60d-53f5-54e7-90af-11bd866041af"},
					{5, "1g.10gb", "MIG-dce1f0fd-a1df-5377-a18c-abf08ed7f356"},
					{6, "1g.10gb", "MIG-a2145222-8cf2-5724-8137-6244d2fcc54a"},
				},
			},
			{
				Index: 1, UUID: "GPU-cd790213-356a-3523-6ac8-379f4b2ab746", Name: "NVIDIA A100-SXM4-80GB", MemoryMB: 81920,
				MIGCapable: true, MIGEnabled: true, MIGEnabledAfterReset: true,
				MIGDevices: []MIGDevice{
					{0, "3g.40gb", "MIG-cb062bba-cd67-5fe6-b659-f15bfef21b76"},
					{1, "2g.20gb", "MIG-155687d5-aca9-535f-b1c0-843d6ef29a83"},
					{2, "1g.10gb", "MIG-ba235276-4a60-5428-8bdc-e3e0ea3b08af"},
					{3, "1g.10gb", "MIG-5a74e558-0ae4-59b8-946d-a0cb600e6936"},
				},
			},
			{
				// MIG mode switched off, effective at the next GPU reset.
				Index: 2, UUID: "GPU-7b16f021-7509-31e2-67ed-1cff8ad6b7c9", Name: "NVIDIA A100-SXM4-80GB", MemoryMB: 81920,
				MIGCapable: true, MIGEnabled: true, MIGEnabledAfterReset: false,
				MIGDevices: []MIGDevice{
					{0, "1c.3g.40gb", "MIG-6ff63161-4553-5226-b82d-23444604e315"},
					{1, "2c.3g.40gb", "MIG-96603c01-fa65-592c-8ef4-0dd95f9160cb"},
				},
			},
			{
				// MIG mode switched on, effective at the next GPU reset.
				Index: 3, UUID: "GPU-70ac22c4-b08c-199f-1be2-1677a8437138", Name: "NVIDIA A100-SXM4-80GB", MemoryMB: 81920,
				MIGCapable: true, MIGEnabled: false, MIGEnabledAfterReset: true,
			},
		},
	},
	{
		dir: "a100-sxm4-40gb-mig-enabled-and-disabled",
		want: []GPU{
			{
				Index: 0, UUID: "GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02", Name: "NVIDIA A100-SXM4-40GB", MemoryMB: 40960,
				MIGCapable: true, MIGEnabled: true, MIGEnabledAfterReset: true,
				MIGDevices: []MIGDevice{
					{0, "3g.20gb", "MIG-c37d8dd5-be15-5221-b0e0-92116d6b50a5"},
					{1, "2g.10gb", "MIG-7f757942-b09e-598e-80c8-8fd55d10e7eb"},
					{2, "1g.5gb", "MIG-21bb17af-d77b-552e-b332-8a348ad1f6a3"},
					{3, "1g.5gb", "MIG-7e56d4c0-751f-5675-9789-86fec3d21b78"},
				},
			},
			{Index: 1, UUID: "GPU-cbed321d-8053-4ea9-900d-454ccfcb1d4d", Name: "NVIDIA A100-SXM4-40GB", MemoryMB: 40960, MIGCapable: true},
		},
	},
	{
		dir: "a100-80gb-pcie-mig-disabled",
		want: []GPU{
			{Index: 0, UUID: "GPU-e330e7bd-cb0f-475d-a76b-a8dd6ddf8c24", Name: "NVIDIA A100 80GB PCIe", MemoryMB: 81920, MIGCapable: true},
		},
	},
	{
		dir: "h100-80gb-hbm3-x4",
		want: sameModel("NVIDIA H100 80GB HBM3", 81559, true,
			"GPU-a7614313-de47-47d2-ae1c-ede46ea5c861", "GPU-38cb7dd0-3e30-4847-8d83-ff6672e69464",
			"GPU-e7b847a7-c706-4672-b649-dd8657f5a97e", "GPU-a012f0c0-5cd3-4605-8d36-bbaf1360a65b"),
	},
	{
		dir: "h200-x8",
		want: sameModel("NVIDIA H200", 143771, true,
			"GPU-7f6d75e6-9fde-4768-010a-b514aac57ab0", "GPU-7a35196b-a36b-7b02-3aa3-953572ab613a",
			"GPU-eb511d68-1f69-9dab-dfc3-6482fb30023d", "GPU-b75eb0d9-da25-ca4c-e2e9-00090d79fa56",
			"GPU-ea2c5cc0-d8cb-6a8c-1105-5f1e2d162a0f", "GPU-678d3ad6-2ceb-d6da-e5ab-dcf3d7836fc4",
			"GPU-c55e7dbb-f326-a344-2d07-469675f7f521", "GPU-e1c0a6ea-beb8-68e3-4556-346197519969"),
	},
	{
		dir:  "tesla-t4",
		want: sameModel("Tesla T4", 15360, false, "GPU-47c83164-3d25-af64-6e88-d6cbd39cd537"),
	},
	{
		dir:  "rtx-4090",
		want: sameModel("NVIDIA GeForce RTX 4090", 24564, false, "GPU-cecb4b41-f08c-4ffc-bf3e-db9c1d2602fb"),
	},
	{
		dir: "v100-sxm2-32gb-x8",
		want: sameModel("Tesla V100-SXM2-32GB", 32768, false,
			"GPU-61cf14ff-3d6c-d7d6-1d7a-e96756acbe44", "GPU-86fb52df-9d4d-0f34-f589-cd8af354145e",
			"GPU-d718d269-1772-5a0d-9b11-cdbe0e17d685", "GPU-21e4f2f6-92ff-afa7-1380-296dd129181f",
			"GPU-533f0fc9-19f1-d3d9-9f55-8c48e5106431", "GPU-f733ca63-66bd-4c3b-74cc-7c3e8dc9040c",
			"GPU-a92ed004-8ae9-2d3e-ab21-97eafe345f4d", "GPU-e8faf623-6186-aebd-ce03-0d315a89aa85"),
	},
}

// sameModel is a node of identical GPUs with MIG mode off, indexed in the
// order of uuids.
func sameModel(name string, memoryMB int64, migCapable bool, uuids ...string) []GPU {
	gpus := make([]GPU, len(uuids))
	for i, uuid := range uuids {
		gpus[i] = GPU{Index: i, UUID: uuid, Name: name, MemoryMB: memoryMB, MIGCapable: migCapable}
	}
	return gpus
}

// withoutMIGDevices is gpus as the query alone reports them.
func withoutMIGDevices(gpus []GPU) []GPU {
	out := make([]GPU, len(gpus))
	for i, g := range gpus {
		g.MIGDevices = nil
		out[i] = g
	}
	return out
}
