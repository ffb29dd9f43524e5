"""The option groups no single module owns: the experiment (names and paths), the model's shared
architecture, the data, the training loop, pruning and test.py's output. The other groups are declared
where they live (the mask search, the distillation, the evaluation, the display, each model)."""
from data import DATASETS
from data.transforms import MODES as PREPROCESS
from models import DIRECTIONS, MODELS, families
from models.base_model import LR_POLICIES
from models.losses import GAN_MODES
from util.option_types import flag, int_or_inf


def experiment(g):
    g.add_argument("--dataroot", type=str, default=None,
                   help="path to images (should have subfolders trainA, trainB, testA, testB, or train, val)")
    g.add_argument("--name", type=str, default="default",
                   help="name of the experiment. It decides where to store samples and models. default: default")
    g.add_argument("--gpu_ids", type=str, default=None,
                   help="gpu ids: e.g. 0  0,1,2  0,2; use -1 for CPU. default: GPU 0 when CUDA is available, else CPU")
    g.add_argument("--checkpoints_dir", type=str, default="./experiments",
                   help="models are saved here. default: ./experiments")
    g.add_argument("--phase", type=str, default="train", help="train, val, test, etc. default: train")
    g.add_argument("--load_path", type=str, default=None, help="The path of load model. default: None")
    g.add_argument("--seed", type=int, default=0, help="random seed for weights, data order and augmentation. default: 0")


def model(g):
    names = tuple(MODELS)
    g.add_argument("--model", type=str, default="cyclegan", choices=names,
                   help=f"chooses which model to use. [{' | '.join(names)}]. default: cyclegan")
    g.add_argument("--input_nc", type=int, default=3,
                   help="# of input image channels: 3 for RGB and 1 for grayscale. default: 3")
    g.add_argument("--output_nc", type=int, default=3,
                   help="# of output image channels: 3 for RGB and 1 for grayscale. default: 3")
    g.add_argument("--ngf", type=int, default=64, help="# of gen filters in the last conv layer. default: 64")
    g.add_argument("--ndf", type=int, default=64, help="# of discrim filters in the first conv layer. default: 64")
    g.add_argument("--netG", type=str, default=None, choices=families.NETG_CHOICES,
                   help="generator architecture. default: resnet_9blocks for cyclegan; for pix2pix a U-Net "
                        "whose depth follows --crop_size (unet_256 at 256 px)")
    g.add_argument("--norm", type=str, default=None, choices=families.NORMS,
                   help="the generator's norm layers: instance (affine-free InstanceNorm) or batch (BatchNorm). "
                        "default: instance for the ResNets (cyclegan), batch for the U-Nets (pix2pix); the mobile "
                        "ResNets have InstanceNorms only")
    flag(g, "--no_dropout", "no dropout for the generator")
    flag(g, "--mask", "use the mask (search) generator")


def data(g):
    g.add_argument("--dataset_mode", type=str, default=None, choices=tuple(DATASETS),
                   help="chooses how datasets are loaded. [unaligned | aligned | single]. "
                        "default: unaligned for cyclegan, aligned for pix2pix")
    g.add_argument("--direction", type=str, default="AtoB", choices=DIRECTIONS, help="AtoB or BtoA. default: AtoB")
    flag(g, "--serial_batches", "if true, takes images in order to make batches, otherwise takes them randomly")
    g.add_argument("--num_threads", type=int, default=8, help="# threads for loading data. default: 8")
    g.add_argument("--batch_size", type=int, default=1, help="input batch size. default: 1")
    g.add_argument("--load_size", type=int, default=286, help="scale images to this size. default: 286")
    g.add_argument("--crop_size", type=int, default=256, help="then crop to this size. default: 256")
    g.add_argument("--max_dataset_size", type=int_or_inf, default=float("inf"),
                   help="Maximum number of samples allowed per dataset. default: inf")
    g.add_argument("--preprocess", type=str, default="resize_and_crop", choices=PREPROCESS,
                   help="scaling and cropping of images at load time. default: resize_and_crop")
    flag(g, "--no_flip", "if specified, do not flip the images for data augmentation")


def training(g):
    g.add_argument("--save_epoch_freq", type=int, default=1,
                   help="frequency of saving checkpoints at the end of epochs. default: 1")
    flag(g, "--continue_train", "continue training: load --load_path, or the latest checkpoint of the run")
    g.add_argument("--init_path", type=str, default=None,
                   help="train.py: start a new run (with --mask, the search) from the weights of this checkpoint: "
                        "a plain full-width model of this project, of the original code or of "
                        "pytorch-CycleGAN-and-pix2pix (a run folder, one of its files or a model-zoo file); "
                        "discriminators too where it has them, masks initialised as usual. default: None (random "
                        "weights)")
    flag(g, "--overwrite", "start afresh on a run folder that holds checkpoints of an earlier run, deleting them "
         "once the new run has saved its first checkpoint (without it such a start is refused)")
    g.add_argument("--keep_checkpoints", type=int, default=3,
                   help="keep the newest this many numbered checkpoints (checkpoints/model_<epoch>.pth, networks "
                        "only; latest.pth holds the full resume state); 0 keeps every one. default: 3")
    flag(g, "--clean_checkpoints", "delete the per-epoch checkpoints at the end of a run (the original always did); a "
         "fine-tune keeps checkpoints/model_0.pth, the pruned model")
    g.add_argument("--epoch_count", type=int, default=None,
                   help="the starting epoch count; on resume it overrides the stored epoch. default: 1")
    g.add_argument("--n_epochs", type=int, default=100, help="number of epochs with the initial learning rate. default: 100")
    g.add_argument("--n_epochs_decay", type=int, default=100,
                   help="number of epochs to linearly decay learning rate to zero. default: 100")
    g.add_argument("--lr", type=float, default=0.0002, help="initial learning rate for adam. default: 0.0002")
    g.add_argument("--beta1", type=float, default=0.5, help="momentum term of adam. default: 0.5")
    g.add_argument("--gan_mode", type=str, default="lsgan", choices=GAN_MODES,
                   help="the type of GAN objective. [vanilla | lsgan | hinge | wgangp]. default: lsgan")
    g.add_argument("--lr_policy", type=str, default="linear", choices=LR_POLICIES,
                   help="learning rate policy. [linear | step | plateau | cosine]. default: linear")
    g.add_argument("--lr_decay_iters", type=int, default=50, help="multiply by a gamma every lr_decay_iters epochs")
    flag(g, "--amp", "mixed precision: forward passes and losses under torch.autocast (masks, mask losses, "
         "bound updates and folding stay fp32)")
    g.add_argument("--amp_dtype", type=str, default="auto", choices=("auto", "bf16", "fp16"),
                   help="autocast dtype of --amp; fp16 adds a gradient scaler. auto: bf16 where supported "
                        "(CPUs, Ampere and later GPUs), else fp16. default: auto")
    flag(g, "--channels_last", "store networks and images in the channels-last (NHWC) memory format")


def pruning(g):
    flag(g, "--finetune", "Finetune after prune")
    flag(g, "--scratch", "Finetune from scratch")


def test_output(g):
    g.add_argument("--ntest", type=int_or_inf, default=float("inf"), help="# of test examples. default: inf")
    g.add_argument("--aspect_ratio", type=float, default=1.0, help="aspect ratio of result images")
    g.add_argument("--results_dir", type=str, default="./results", help="test.py writes results here. default: ./results")
